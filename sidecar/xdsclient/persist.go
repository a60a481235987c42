package xdsclient

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	discoveryv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/service/discovery/v3"
)

// StateFile is the name of the state file inside Config.StateDir.
const StateFile = "xds-state.json"

// stateFormat versions the state file; a reader rejects other formats.
const stateFormat = "shoal.xdsclient.state/v1"

// stateFile is the on-disk form of a Snapshot: a JSON envelope with one
// binary DeltaDiscoveryResponse per type (resources with their names and
// per-resource versions, system_version_info = the type's version). The
// resources are stored as received (their wire form), so the file reads
// the same whatever decodes it: files written before the wire codec
// (go-control-plane's types) load unchanged, and vice versa.
type stateFile struct {
	Format    string    `json:"format"`
	NodeID    string    `json:"node_id,omitempty"`
	SavedAt   time.Time `json:"saved_at"`
	Responses [][]byte  `json:"responses"`
}

// saveState writes s to dir (created if missing) atomically: a temporary file in dir, fsynced,
// then renamed over StateFile, so a crash leaves the old or the new file.
func saveState(dir, nodeID string, s *Snapshot) error {
	f := stateFile{Format: stateFormat, NodeID: nodeID, SavedAt: time.Now().UTC()}
	for _, t := range subscribedTypes {
		b, err := stateMarshal.Marshal(snapshotResponse(s, t))
		if err != nil {
			return fmt.Errorf("xdsclient: encode state: %w", err)
		}
		f.Responses = append(f.Responses, b)
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("xdsclient: encode state: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("xdsclient: write state: %w", err)
	}
	return writeAtomic(filepath.Join(dir, StateFile), data)
}

// snapshotResponse returns the resources of one type of s as a delta response.
func snapshotResponse(s *Snapshot, typeURL string) *discoveryv3.DeltaDiscoveryResponse {
	raw := s.raw[typeURL]
	r := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, SystemVersionInfo: s.Versions[typeURL]}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		r.Resources = append(r.Resources, &discoveryv3.Resource{
			Name:     name,
			Version:  s.resourceVersions[typeURL][name],
			Resource: &anypb.Any{TypeUrl: typeURL, Value: raw[name]},
		})
	}
	return r
}

// stateMarshal writes the state file's responses in field order, so that
// the same snapshot gives the same file.
var stateMarshal = proto.MarshalOptions{Deterministic: true}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".xds-state-*.tmp")
	if err != nil {
		return fmt.Errorf("xdsclient: write state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("xdsclient: write state: %w", err)
	}
	return nil
}

// LoadState reads the snapshot saved in dir by a Client with that
// StateDir. Every resource is decoded and validated again; a missing file
// returns an error satisfying errors.Is(err, fs.ErrNotExist). The returned
// snapshot has FromState set.
func LoadState(dir string) (*Snapshot, error) {
	st, err := loadStore(dir, nil, nil)
	if err != nil {
		return nil, err
	}
	s := newSnapshot(st)
	s.FromState = true
	return s, nil
}

// loadStore reads dir's state file into a new store, running validate (if
// not nil) as for a live response.
func loadStore(dir string, listeners []string, validate ValidateFunc) (*store, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("xdsclient: read state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("xdsclient: decode state: %w", err)
	}
	if f.Format != stateFormat {
		return nil, fmt.Errorf("xdsclient: state format %q, want %q (written by another shoal version; it is replaced at the next update)", f.Format, stateFormat)
	}
	st := newStore(listeners)
	for _, b := range f.Responses {
		if err := loadResponse(st, b, validate); err != nil {
			return nil, fmt.Errorf("xdsclient: decode state: %w", err)
		}
	}
	return st, nil
}

func loadResponse(st *store, b []byte, validate ValidateFunc) error {
	r := &discoveryv3.DeltaDiscoveryResponse{}
	if err := proto.Unmarshal(b, r); err != nil {
		return err
	}
	if _, ok := st.types[r.GetTypeUrl()]; !ok {
		return fmt.Errorf("unsupported type %q", r.GetTypeUrl())
	}
	u, err := decodeDelta(r)
	if err == nil && validate != nil {
		err = validate(u.typeURL, u.upserts)
	}
	if err != nil {
		return err
	}
	st.apply(u)
	return nil
}
