package identity

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }
