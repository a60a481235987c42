package regexsize

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		expr    string
		wantErr string
	}{
		{name: "a usual path regex passes", expr: `^/api/v[0-9]+/users/[0-9a-f]{24}$`},
		{name: "alternatives of a few words pass", expr: `/static/.*\.(js|css|png|jpg|svg)`},
		{name: "a bounded repetition of an alternation is refused", expr: `^/[a-z]*(a|b){1000}$`, wantErr: "program size 3007 is over the limit of 100"},
		{name: "a long counted class is refused", expr: `[a-z]{200}`, wantErr: "over the limit of 100"},
		{name: "a syntax error is reported", expr: `(`, wantErr: "missing closing )"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.expr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Check(%q) = %v, want nil", tc.expr, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Check(%q) = %v, want an error containing %q", tc.expr, err, tc.wantErr)
			}
		})
	}
}
