//go:build ignore

// Command protosubset writes trimmed copies of protobuf messages — only the
// fields a keep-list names, with their field numbers, names and types
// unchanged — as .proto files under a distinct proto package, so that
// protoc-gen-go code for a small binary can read a large schema's wire
// format without linking the whole schema (issue 12).
//
// It reads the compiled descriptors of the libraries imported below
// (go-control-plane's Envoy packages, genproto's google.rpc, etcd's
// etcdserverpb), never their .proto sources, so the copy follows the versions
// go.mod pins. It is not linked into any binary:
//
//	go run tools/protosubset/main.go -keep tools/protosubset/envoy.keep \
//	    -out sidecar/internal/xdspb/proto -package shoal.xds \
//	    -go github.com/shoal-mesh/shoal/sidecar/internal/xdspb
//
// scripts/gen-proto.sh runs it before buf generate.
//
// The keep-list names one message per line (full proto name) followed by
// the fields to keep; indented lines continue the field list, '#' starts a
// comment, "*" keeps every field. Rules:
//   - A message-typed field may only reference a kept message or a
//     google.protobuf well-known type; the tool fails otherwise, naming both.
//   - A oneof keeps every member once one is kept: members not on the list
//     whose type is not kept become <package>.Opaque, an empty message, so
//     the oneof's last-member-wins presence stays as on the wire while the
//     member's content is dropped.
//   - Enums referenced by kept fields are copied whole.
//   - Each source proto package becomes one file
//     <package>/<source package path>/<name>.proto.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// Envoy's xDS resources and the messages they nest (for -keep envoy.keep).
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/wrr_locality/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	_ "google.golang.org/genproto/googleapis/rpc/status"

	// etcd's v3 API (for -keep etcd.keep).
	_ "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func main() {
	keep := flag.String("keep", "", "keep-list file")
	out := flag.String("out", "", "directory to write the .proto files under")
	pkg := flag.String("package", "", "proto package prefix of the copies (e.g. shoal.xds)")
	goPkg := flag.String("go", "", "Go import path prefix of the generated code")
	flag.Parse()
	if *keep == "" || *out == "" || *pkg == "" || *goPkg == "" {
		flag.Usage()
		os.Exit(2)
	}
	list, err := readKeepList(*keep)
	if err != nil {
		log.Fatal(err)
	}
	g := &generator{prefix: *pkg, goPrefix: *goPkg, keep: list, keepFile: filepath.ToSlash(*keep)}
	files, err := g.run()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(*out, filepath.FromSlash(strings.ReplaceAll(*pkg, ".", "/")))); err != nil {
		log.Fatal(err)
	}
	for path, text := range files {
		p := filepath.Join(*out, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// keepList maps a message's full name to the fields kept (nil: all).
type keepList map[protoreflect.FullName]map[protoreflect.Name]bool

func readKeepList(path string) (keepList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list := keepList{}
	var cur protoreflect.FullName
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			cur = protoreflect.FullName(words[0])
			if _, dup := list[cur]; dup {
				return nil, fmt.Errorf("%s:%d: %s listed twice", path, n, cur)
			}
			list[cur] = map[protoreflect.Name]bool{}
			words = words[1:]
		} else if cur == "" {
			return nil, fmt.Errorf("%s:%d: fields before the first message", path, n)
		}
		for _, w := range words {
			if w == "*" {
				list[cur] = nil
				continue
			}
			if list[cur] != nil {
				list[cur][protoreflect.Name(w)] = true
			}
		}
	}
	return list, sc.Err()
}

type generator struct {
	prefix, goPrefix, keepFile string
	keep                       keepList
	// enums are the enums referenced by kept fields.
	enums map[protoreflect.FullName]protoreflect.EnumDescriptor
	// opaqueUsed: some oneof member was replaced by Opaque.
	opaqueUsed bool
}

func (g *generator) run() (map[string]string, error) {
	g.enums = map[protoreflect.FullName]protoreflect.EnumDescriptor{}
	var errs []error
	msgs := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	for name, fields := range g.keep {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", name, err))
			continue
		}
		md, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			errs = append(errs, fmt.Errorf("%s is not a message", name))
			continue
		}
		msgs[name] = md
		for f := range fields {
			if md.Fields().ByName(f) == nil {
				errs = append(errs, fmt.Errorf("%s has no field %s", name, f))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Nested messages need their parents: keep those as containers.
	for _, md := range msgs {
		for p := md.Parent(); p != nil; p = p.Parent() {
			pm, ok := p.(protoreflect.MessageDescriptor)
			if !ok {
				break
			}
			if _, kept := g.keep[pm.FullName()]; !kept {
				return nil, fmt.Errorf("%s is kept but its parent %s is not", md.FullName(), pm.FullName())
			}
		}
	}
	// Group the top-level messages by proto package.
	byPkg := map[protoreflect.FullName][]protoreflect.MessageDescriptor{}
	for _, md := range msgs {
		if _, top := md.Parent().(protoreflect.FileDescriptor); top {
			pkg := md.ParentFile().Package()
			byPkg[pkg] = append(byPkg[pkg], md)
		}
	}
	// Two passes: the first finds the enums kept fields reference, so that
	// each package's file can hold its own top-level enums.
	if _, err := g.files(byPkg); err != nil {
		return nil, err
	}
	for _, ed := range g.enums {
		if _, ok := byPkg[ed.ParentFile().Package()]; !ok {
			byPkg[ed.ParentFile().Package()] = nil
		}
	}
	return g.files(byPkg)
}

func (g *generator) files(byPkg map[protoreflect.FullName][]protoreflect.MessageDescriptor) (map[string]string, error) {
	files := map[string]string{}
	for pkg, tops := range byPkg {
		slices.SortFunc(tops, func(a, b protoreflect.MessageDescriptor) int { return cmp.Compare(a.FullName(), b.FullName()) })
		text, err := g.file(pkg, tops)
		if err != nil {
			return nil, err
		}
		files[g.filePath(pkg)] = text
	}
	if g.opaqueUsed {
		files[g.opaquePath()] = g.opaqueFile()
	}
	return files, nil
}

// filePath is the copy of package pkg: shoal/xds/envoy/config/cluster/v3/cluster.proto.
func (g *generator) filePath(pkg protoreflect.FullName) string {
	dir := strings.ReplaceAll(g.prefix+"."+string(pkg), ".", "/")
	return dir + "/" + goName(pkg, false) + ".proto"
}

func (g *generator) opaquePath() string {
	return strings.ReplaceAll(g.prefix, ".", "/") + "/opaque.proto"
}

// goName is the last element of pkg before a version, or with the version
// appended when withVersion (go-control-plane's naming: clusterv3).
func goName(pkg protoreflect.FullName, withVersion bool) string {
	parts := strings.Split(string(pkg), ".")
	last := parts[len(parts)-1]
	if len(parts) > 1 && len(last) > 1 && last[0] == 'v' && strings.Trim(last[1:], "0123456789") == "" {
		if withVersion {
			return parts[len(parts)-2] + last
		}
		return parts[len(parts)-2]
	}
	return last
}

func (g *generator) goPackage(pkg protoreflect.FullName) string {
	return g.goPrefix + "/" + strings.ReplaceAll(string(pkg), ".", "/") + ";" + goName(pkg, true)
}

const header = "// Code generated by tools/protosubset from %s; DO NOT EDIT.\n"

func (g *generator) file(pkg protoreflect.FullName, tops []protoreflect.MessageDescriptor) (string, error) {
	var body strings.Builder
	imports := map[string]bool{}
	sources := map[string]bool{}
	for _, md := range tops {
		if err := g.message(&body, md, "", imports, sources, pkg); err != nil {
			return "", err
		}
	}
	// Top-level enums of this package referenced anywhere.
	for _, ed := range sortedEnums(g.enums) {
		if _, top := ed.Parent().(protoreflect.FileDescriptor); top && ed.ParentFile().Package() == pkg {
			sources[ed.ParentFile().Path()] = true
			g.enum(&body, ed, "")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, header, g.keepFile)
	b.WriteString("// Trimmed copy of ")
	b.WriteString(strings.Join(slices.Sorted(maps.Keys(sources)), ", "))
	b.WriteString(":\n// the kept fields have their original numbers, names and types.\n\n")
	b.WriteString("syntax = \"proto3\";\n\n")
	fmt.Fprintf(&b, "package %s.%s;\n\n", g.prefix, pkg)
	delete(imports, g.filePath(pkg))
	for _, imp := range slices.Sorted(maps.Keys(imports)) {
		fmt.Fprintf(&b, "import %q;\n", imp)
	}
	if len(imports) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "option go_package = %q;\n", g.goPackage(pkg))
	b.WriteString(body.String())
	return b.String(), nil
}

// message writes md and its kept nested messages and used nested enums.
func (g *generator) message(b *strings.Builder, md protoreflect.MessageDescriptor, indent string, imports, sources map[string]bool, pkg protoreflect.FullName) error {
	sources[md.ParentFile().Path()] = true
	kept := g.keep[md.FullName()]
	fmt.Fprintf(b, "\n%smessage %s {\n", indent, md.Name())
	in := indent + "  "
	// Nested messages and enums first.
	nested := false
	for i := 0; i < md.Messages().Len(); i++ {
		nm := md.Messages().Get(i)
		if _, ok := g.keep[nm.FullName()]; ok && !nm.IsMapEntry() {
			if err := g.message(b, nm, in, imports, sources, pkg); err != nil {
				return err
			}
			nested = true
		}
	}
	want := func(f protoreflect.FieldDescriptor) bool { return kept == nil || kept[f.Name()] }
	// Oneofs with a kept member keep every member.
	oneofs := map[protoreflect.FullName]bool{}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() && want(f) {
			oneofs[o.FullName()] = true
		}
	}
	var lines []string
	var errs []error
	done := map[protoreflect.FullName]bool{}
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		o := f.ContainingOneof()
		if o != nil && !o.IsSynthetic() {
			if !oneofs[o.FullName()] || done[o.FullName()] {
				continue
			}
			done[o.FullName()] = true
			lines = append(lines, fmt.Sprintf("%soneof %s {", in, o.Name()))
			for j := 0; j < o.Fields().Len(); j++ {
				of := o.Fields().Get(j)
				l, err := g.field(of, !want(of), imports)
				if err != nil {
					errs = append(errs, err)
				}
				lines = append(lines, in+"  "+l)
			}
			lines = append(lines, in+"}")
			continue
		}
		if !want(f) {
			continue
		}
		l, err := g.field(f, false, imports)
		if err != nil {
			errs = append(errs, err)
		}
		lines = append(lines, in+l)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Nested enums used by kept fields.
	for i := 0; i < md.Enums().Len(); i++ {
		if ed, ok := g.enums[md.Enums().Get(i).FullName()]; ok {
			g.enum(b, ed, in)
			nested = true
		}
	}
	if len(lines) > 0 && nested {
		b.WriteString("\n")
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(b, "%s}\n", indent)
	return nil
}

// field returns a field's declaration; opaque replaces a message type
// that is not kept by Opaque (an unkept oneof member).
func (g *generator) field(f protoreflect.FieldDescriptor, opaque bool, imports map[string]bool) (string, error) {
	label := ""
	switch {
	case f.IsMap():
		k, err := g.typeName(f.MapKey(), false, imports)
		if err != nil {
			return "", err
		}
		v, err := g.typeName(f.MapValue(), false, imports)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.FullName(), err)
		}
		return fmt.Sprintf("map<%s, %s> %s = %d;", k, v, f.Name(), f.Number()), nil
	case f.IsList():
		label = "repeated "
	case f.HasOptionalKeyword():
		label = "optional "
	}
	t, err := g.typeName(f, opaque, imports)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.FullName(), err)
	}
	return fmt.Sprintf("%s%s %s = %d;", label, t, f.Name(), f.Number()), nil
}

func (g *generator) typeName(f protoreflect.FieldDescriptor, opaque bool, imports map[string]bool) (string, error) {
	switch f.Kind() {
	case protoreflect.EnumKind:
		ed := f.Enum()
		g.enums[ed.FullName()] = ed
		imports[g.filePath(ed.ParentFile().Package())] = true
		return "." + g.prefix + "." + string(ed.FullName()), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := f.Message()
		if md.ParentFile().Package() == "google.protobuf" {
			imports[md.ParentFile().Path()] = true
			return "." + string(md.FullName()), nil
		}
		if _, ok := g.keep[md.FullName()]; ok {
			imports[g.filePath(md.ParentFile().Package())] = true
			return "." + g.prefix + "." + string(md.FullName()), nil
		}
		if opaque {
			g.opaqueUsed = true
			imports[g.opaquePath()] = true
			return "." + g.prefix + ".Opaque", nil
		}
		return "", fmt.Errorf("references %s, which is not kept", md.FullName())
	default:
		return f.Kind().String(), nil
	}
}

func (g *generator) enum(b *strings.Builder, ed protoreflect.EnumDescriptor, indent string) {
	fmt.Fprintf(b, "\n%senum %s {\n", indent, ed.Name())
	if ed.Options() != nil {
		if o, ok := ed.Options().(interface{ GetAllowAlias() bool }); ok && o.GetAllowAlias() {
			fmt.Fprintf(b, "%s  option allow_alias = true;\n", indent)
		}
	}
	for i := 0; i < ed.Values().Len(); i++ {
		v := ed.Values().Get(i)
		fmt.Fprintf(b, "%s  %s = %d;\n", indent, v.Name(), v.Number())
	}
	for i := 0; i < ed.ReservedRanges().Len(); i++ {
		r := ed.ReservedRanges().Get(i)
		if r[0] == r[1] {
			fmt.Fprintf(b, "%s  reserved %d;\n", indent, r[0])
		} else {
			fmt.Fprintf(b, "%s  reserved %d to %d;\n", indent, r[0], r[1])
		}
	}
	fmt.Fprintf(b, "%s}\n", indent)
}

func (g *generator) opaqueFile() string {
	var b strings.Builder
	fmt.Fprintf(&b, header, g.keepFile)
	b.WriteString("\nsyntax = \"proto3\";\n\n")
	fmt.Fprintf(&b, "package %s;\n\n", g.prefix)
	fmt.Fprintf(&b, "option go_package = %q;\n\n", g.goPrefix+";"+path.Base(g.goPrefix))
	b.WriteString("// Opaque stands for a oneof member whose type is not kept: decoding keeps\n")
	b.WriteString("// which member was set last, as on the wire, and drops its content.\n")
	b.WriteString("message Opaque {}\n")
	return b.String()
}

func sortedEnums(m map[protoreflect.FullName]protoreflect.EnumDescriptor) []protoreflect.EnumDescriptor {
	out := make([]protoreflect.EnumDescriptor, 0, len(m))
	for _, ed := range m {
		out = append(out, ed)
	}
	slices.SortFunc(out, func(a, b protoreflect.EnumDescriptor) int { return cmp.Compare(a.FullName(), b.FullName()) })
	return out
}
