package api_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
)

// TestReferencePageRendersInChromium loads /api/docs in Debian's headless
// Chromium (installed by ops/test.sh) and checks that the vendored Redoc
// drew the document under the page's Content-Security-Policy: operations
// and parameters are in the DOM, and the browser reports no blocked script,
// style or worker. (The one blocked load allowed is Redoc's "powered by"
// logo from its CDN: refusing it is the point of vendoring.)
func TestReferencePageRendersInChromium(t *testing.T) {
	t.Parallel()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatal("no Chromium found: ops/test.sh installs Debian's chromium (apt-get install chromium)")
	}
	s := apitest.New(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var dom, logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=20000",
		"--enable-logging=stderr", "--v=0", "--dump-dom", s.URL+"/api/docs")
	cmd.Stdout, cmd.Stderr = &dom, &logs
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, logs.String())
	}
	for _, want := range []string{"Open a ticket", "Idempotency-Key", "X-PatchDesk-Signature", "createTicket"} {
		if !strings.Contains(dom.String(), want) {
			t.Errorf("the rendered page lacks %q (%d bytes of DOM)", want, dom.Len())
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "Content Security Policy") && !strings.Contains(line, "Loading the image 'https://cdn.redoc.ly/") {
			t.Errorf("blocked by the page's CSP: %s", line)
		}
	}
}
