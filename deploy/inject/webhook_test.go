package inject

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// review posts body to a webhook over httptest and decodes the answer.
func review(t *testing.T, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	wh, err := NewWebhook(testConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(wh)
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("answer %+v is not an admission.k8s.io/v1 AdmissionReview with a response", out)
	}
	return out.Response
}

func loadReview(t *testing.T) (raw []byte, req map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("testdata/admissionreview-pod.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return raw, doc["request"].(map[string]any)
}

func TestWebhookPatchAppliesToTheRequestPod(t *testing.T) {
	raw, req := loadReview(t)
	resp := review(t, raw)
	if !resp.Allowed || string(resp.UID) != req["uid"] {
		t.Fatalf("response = %+v, want allowed with uid %v", resp, req["uid"])
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patchType = %v, want JSONPatch", resp.PatchType)
	}
	object, _ := json.Marshal(req["object"])
	patched, err := ApplyPatch(object, resp.Patch)
	if err != nil {
		t.Fatalf("patch does not apply: %v\npatch: %s", err, resp.Patch)
	}

	// The patched pod is what Pod makes of the request's pod...
	var in, got corev1.Pod
	if err := json.Unmarshal(object, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	want, err := Pod(&in, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Errorf("patched pod (-Pod() +patched):\n%s", diff)
	}
	// ...and fields the typed API does not know survive the patch.
	for _, kept := range []string{`"futureContainerField":{"kept":true}`, `"example.com/some-future-annotation":"kept"`} {
		if !strings.Contains(string(patched), kept) {
			t.Errorf("patched pod lost %s", kept)
		}
	}
	// The patch only adds: it must never replace what the user wrote.
	var ops []Operation
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Op != "add" {
			t.Errorf("op %s %s, want only adds", op.Op, op.Path)
		}
	}
}

func TestWebhookAdmitsOtherPodsUnpatched(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(req map[string]any)
	}{
		{"leaves a pod without the annotation alone", func(req map[string]any) {
			meta := req["object"].(map[string]any)["metadata"].(map[string]any)
			delete(meta["annotations"].(map[string]any), AnnotationInject)
		}},
		{"ignores updates", func(req map[string]any) { req["operation"] = "UPDATE" }},
		{"ignores other kinds", func(req map[string]any) {
			req["kind"] = map[string]any{"group": "apps", "version": "v1", "kind": "Deployment"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, req := loadReview(t)
			tc.mutate(req)
			body, _ := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
			resp := review(t, body)
			if !resp.Allowed || resp.Patch != nil || resp.PatchType != nil {
				t.Errorf("response = %+v, want allowed with no patch", resp)
			}
		})
	}
}

func TestWebhookDeniesBadAnnotationsWithTheReason(t *testing.T) {
	_, req := loadReview(t)
	meta := req["object"].(map[string]any)["metadata"].(map[string]any)
	meta["annotations"].(map[string]any)[AnnotationUpstreams] = "users"
	body, _ := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
	resp := review(t, body)
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, AnnotationUpstreams) {
		t.Errorf("response = %+v, want denied naming %s", resp, AnnotationUpstreams)
	}
	if !strings.Contains(resp.Result.Message, `pod "orders-7d9c8b6f5d-*"`) {
		t.Errorf("message %q does not name the pod by its generateName", resp.Result.Message)
	}
}

func TestWebhookRejectsNonReviews(t *testing.T) {
	wh, err := NewWebhook(testConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, body string
		want         int
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "{}", http.StatusBadRequest},
		{http.MethodPost, "not json", http.StatusBadRequest},
	} {
		rec := httptest.NewRecorder()
		wh.ServeHTTP(rec, httptest.NewRequest(tc.method, "/mutate", strings.NewReader(tc.body)))
		if rec.Code != tc.want {
			t.Errorf("%s %q: status %d, want %d", tc.method, tc.body, rec.Code, tc.want)
		}
	}
}
