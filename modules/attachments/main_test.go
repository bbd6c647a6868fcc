package attachments_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
)

// TestMain reports how many responses this package's tests validated
// against docs/openapi.yaml.
func TestMain(m *testing.M) {
	code := m.Run()
	fmt.Fprintf(os.Stderr, "apitest: %d responses validated against docs/openapi.yaml\n", apitest.Validated())
	os.Exit(code)
}
