package xds

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// FuzzTranslate feeds arbitrary route models (protobuf wire bytes of a
// Route, plus a strategy and a seed for shuffling) to Translate and checks
// that every resource passes ValidateAll, the set is consistent, and the
// translation is deterministic: independent of input order and repeatable.
func FuzzTranslate(f *testing.F) {
	for _, tc := range goldenCases {
		for _, r := range tc.in.Routes {
			b, err := proto.Marshal(r)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, uint8(len(r.GetRules())), uint64(1))
		}
	}
	f.Add([]byte{}, uint8(0), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, strategy uint8, seed uint64) {
		r := &shoalv1.Route{}
		if err := proto.Unmarshal(data, r); err != nil {
			return // not a protobuf Route: nothing to translate
		}
		other := proto.CloneOf(r)
		other.Name = "other"
		for _, rule := range other.GetRules() {
			if rule != nil {
				rule.Strategy = shoalv1.Strategy(strategy % 8)
			}
		}
		in := Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{r, other, goldenCases[2].in.Routes[3]}}
		for _, caps := range allProfiles {
			res, statuses := Translate(in, caps)
			if err := res.Check(); err != nil {
				t.Fatalf("%s: Check() = %v\nroute: %v", caps.Profile, err, r)
			}
			shuffled := Input{Endpoints: append(ordersFleet()[:0:0], ordersFleet()...), Routes: append([]*shoalv1.Route(nil), in.Routes...)}
			rng := rand.New(rand.NewPCG(seed, seed))
			rng.Shuffle(len(shuffled.Endpoints), func(i, j int) {
				shuffled.Endpoints[i], shuffled.Endpoints[j] = shuffled.Endpoints[j], shuffled.Endpoints[i]
			})
			rng.Shuffle(len(shuffled.Routes), func(i, j int) { shuffled.Routes[i], shuffled.Routes[j] = shuffled.Routes[j], shuffled.Routes[i] })
			res2, statuses2 := Translate(shuffled, caps)
			if diff := cmp.Diff(res, res2, protocmp.Transform(), cmp.AllowUnexported(Resources{})); diff != "" {
				t.Fatalf("%s: translation depends on input order (-first +shuffled):\n%s", caps.Profile, diff)
			}
			if diff := cmp.Diff(statuses, statuses2, protocmp.Transform()); diff != "" {
				t.Fatalf("%s: statuses depend on input order (-first +shuffled):\n%s", caps.Profile, diff)
			}
			for i := range res.Clusters {
				if HashResource(res.Clusters[i]) != HashResource(res2.Clusters[i]) {
					t.Fatalf("%s: cluster %d encodes differently", caps.Profile, i)
				}
			}
		}
	})
}
