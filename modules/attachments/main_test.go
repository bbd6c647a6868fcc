package attachments_test

import (
	"testing"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
)

// TestMain reports how many responses this package's tests validated
// against docs/openapi.yaml.
func TestMain(m *testing.M) { apitest.Main(m) }
