// Package regexsize bounds the cost of route regexes the way Envoy's
// RE2 max_program_size does (envoy.type.matcher.v3.RegexMatcher.GoogleRE2,
// default 100): a regex whose compiled program has more instructions than
// Max is refused. A program's size is what matching a request costs per
// input byte at worst, so a 20-byte regex such as `^/[a-z]*(a|b){1000}$`
// (3,007 instructions) made every request with a 4 KiB path take ~150 ms of
// proxy CPU (issue 16). Both the control plane's validation and the sidecar's
// xDS route compiler use it, so the sidecar never accepts what the API
// refuses.
package regexsize

import (
	"fmt"
	"regexp/syntax"
)

// Max is the largest program size accepted, Envoy's default
// max_program_size. Go's instruction count is close to RE2's: one per
// literal rune or class, a few per alternation or repetition.
const Max = 100

// ProgramSize returns the number of instructions of expr's compiled
// (simplified) RE2 program, or the parse error.
func ProgramSize(expr string) (int, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return 0, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, err
	}
	return len(prog.Inst), nil
}

// Check returns an error when expr does not parse or its program is larger
// than Max.
func Check(expr string) error {
	n, err := ProgramSize(expr)
	if err != nil {
		return err
	}
	if n > Max {
		return fmt.Errorf("regex program size %d is over the limit of %d (Envoy's max_program_size): simplify it (fewer repetitions or alternatives)", n, Max)
	}
	return nil
}
