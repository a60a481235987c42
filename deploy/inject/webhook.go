package inject

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReviewBytes bounds an AdmissionReview body; the API server sends at
// most a few MiB (etcd's request limit is 1.5 MiB per object).
const maxReviewBytes = 8 << 20

// Webhook is a mutating admission webhook for pods (admission.k8s.io/v1):
// it answers each AdmissionReview with the JSON patch that injects the
// sidecar, or with no patch for pods that do not ask for it. A pod that
// asks for injection but cannot get it (a bad annotation) is denied with
// the reason, so that the owning ReplicaSet's events say what to fix.
// ServeHTTP is safe for concurrent use.
type Webhook struct {
	cfg Config
	log *slog.Logger
}

var _ http.Handler = (*Webhook)(nil)

// NewWebhook validates cfg and returns a webhook; a nil log means
// slog.Default().
func NewWebhook(cfg Config, log *slog.Logger) (*Webhook, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Webhook{cfg: cfg, log: log.With("component", "inject-webhook")}, nil
}

// ServeHTTP handles POST of an AdmissionReview.
func (wh *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an admission.k8s.io/v1 AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil || len(body) > maxReviewBytes {
		http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an AdmissionReview with a request: %v", err), http.StatusBadRequest)
		return
	}
	resp := wh.Review(review.Request)
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		wh.log.Warn("write admission response", "uid", resp.UID, "err", err)
	}
}

// Review answers one admission request.
func (wh *Webhook) Review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return resp
	}
	patch, err := wh.patch(req.Object.Raw)
	if err != nil {
		wh.log.Info("injection refused", "namespace", req.Namespace, "err", err)
		resp.Allowed = false
		resp.Result = &metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
			Reason: metav1.StatusReasonInvalid, Message: err.Error(),
		}
		return resp
	}
	if patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	return resp
}

// patch returns the JSON patch injecting the pod in raw, or nil when the
// pod is not to be injected.
func (wh *Webhook) patch(raw []byte) ([]byte, error) {
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, fmt.Errorf("inject: decode pod: %w", err)
	}
	if !Requested(pod.Annotations) || Injected(&pod.Spec) {
		return nil, nil
	}
	out, err := Pod(&pod, wh.cfg)
	if err != nil {
		return nil, err
	}
	var before, after any
	if err := remarshal(&pod, &before); err != nil {
		return nil, err
	}
	if err := remarshal(out, &after); err != nil {
		return nil, err
	}
	return json.Marshal(Diff(before, after))
}
