package members_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/attachments"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// BenchmarkFailedLoginMemory measures how far the process's resident memory
// grows while 50 clients fail to log in at the same moment, with production
// settings: argon2id at DefaultArgon (19 MiB per hash), the default
// connection pool and hashing bound (one slot per CPU). The per-IP login
// limits are raised out of the way so the figure shows the hashing bound
// alone. "default" keeps the default 2 s wait for a hashing slot (the rest
// are shed with 503); "queue-all" waits up to a minute, so every attempt is
// hashed and answered 401. Reported: peak RSS growth over the idle process
// (MiB) and how many attempts were answered 401, 429 or 503. Run it alone
// (peak RSS is per process):
//
//	go test -run XXX -bench FailedLoginMemory -benchtime 3x ./modules/members/
func BenchmarkFailedLoginMemory(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchFailedLogins(b, members.Config{}) })
	b.Run("queue-all", func(b *testing.B) { benchFailedLogins(b, members.Config{HashWait: time.Minute}) })
	// unbounded is the behaviour before the hashing bound: every login hashes at once.
	b.Run("unbounded", func(b *testing.B) {
		benchFailedLogins(b, members.Config{MaxConcurrentHashes: 50, HashWait: time.Minute})
	})
}

func benchFailedLogins(b *testing.B, mcfg members.Config) {
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(b)
	reg, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(reg.Close)
	cfg := api.Config{Members: mcfg, MembersHTTP: members.HandlerConfig{SignupsPerMinute: 1e6, LoginsPerMinute: 1e6, LoginsPerIPPerMinute: 1e6},
		Attachments: attachments.Config{BlobURL: "file://" + filepath.ToSlash(b.TempDir())}}
	app, err := api.New(ctx, reg, slog.New(slog.NewTextHandler(io.Discard, nil)), obs.NewMetrics(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler)
	b.Cleanup(srv.Close)
	post := func(path string, body any) int {
		js, _ := json.Marshal(body)
		res, err := srv.Client().Post(srv.URL+path, "application/json", bytes.NewReader(js))
		if err != nil {
			b.Error(err)
			return 0
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode
	}
	if st := post("/api/v1/signup", map[string]string{"slug": "membomb", "name": "M", "admin_email": "owner@membomb.test",
		"admin_name": "O", "password": "correct horse battery"}); st != http.StatusCreated {
		b.Fatalf("signup: %d", st)
	}
	const clients = 50
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = clients
	statuses := map[int]int{}
	var peak float64
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		debug.FreeOSMemory()
		base := rssKiB(b, "VmRSS")
		resetPeakRSS(b)
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for range clients {
			wg.Go(func() {
				st := post("/t/membomb/api/v1/sessions", map[string]string{"email": "owner@membomb.test", "password": "wrong password!"})
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			})
		}
		wg.Wait()
		peak = max(peak, float64(rssKiB(b, "VmHWM")-base)/1024)
	}
	b.ReportMetric(peak, "peak-RSS-growth-MiB")
	for _, st := range []int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		b.ReportMetric(float64(statuses[st])/float64(b.N), strconv.Itoa(st)+"/op")
	}
}

// rssKiB reads one memory field (VmRSS, VmHWM) of /proc/self/status.
func rssKiB(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("%s not in /proc/self/status", field)
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux clear_refs 5).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset peak RSS: %v", err)
	}
}
