package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/notify/notifytest"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	apitest.Eventually(t, 30*time.Second, url, func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
}

func post(t *testing.T, url, token string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, res.StatusCode, out)
	}
	return out
}

// TestSplitProcesses runs the standalone broker, an API-only server and a
// worker as separate commands on one database: an event written through the
// API reaches a webhook through the worker's relay, consumer and jobs.
func TestSplitProcesses(t *testing.T) {
	dsn := tenancytest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kafkaAddr, apiAddr, workerAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	done := make(chan error, 3)
	go func() { done <- run(ctx, []string{"kafka", "--addr", kafkaAddr, "--data-dir", t.TempDir()}) }()
	common := []string{"--database-url", dsn, "--kafka-brokers", kafkaAddr, "--data-dir", t.TempDir(), "--webhook-allow-private"}
	apitest.Eventually(t, 30*time.Second, "broker", func() bool {
		c, err := net.DialTimeout("tcp", kafkaAddr, time.Second)
		return err == nil && c.Close() == nil
	})
	go func() {
		done <- run(ctx, append([]string{"serve", "--role=api", "--addr", apiAddr, "--signups-per-minute", "100"}, common...))
	}()
	waitHTTP(t, "http://"+apiAddr+"/readyz")
	go func() { done <- run(ctx, append([]string{"worker", "--addr", workerAddr}, common...)) }()
	waitHTTP(t, "http://"+workerAddr+"/healthz")
	res, err := http.Post("http://"+workerAddr+"/api/v1/signup", "application/json", nil)
	if err != nil {
		t.Fatalf("worker signup request: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("worker serves the public API: %s", res.Status)
	}

	hook := notifytest.StartHook(t, "split process secret!")
	base := "http://" + apiAddr
	token := post(t, base+"/api/v1/signup", "", map[string]string{
		"slug": "split", "name": "Split", "admin_email": "o@split.test", "admin_name": "O", "password": "long password 1",
	})["token"].(string)
	post(t, base+"/t/split/api/v1/webhooks", token, map[string]any{"url": hook.URL, "events": []string{"*"}, "secret": "split process secret!"})
	post(t, base+"/t/split/api/v1/tickets", token, map[string]any{"title": "through the worker", "body": "x"})
	apitest.Eventually(t, 30*time.Second, "webhook through the worker", func() bool {
		counts, _ := hook.Counts()
		return len(counts) == 1
	})
	cancel()
	for range 3 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("process exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a process did not stop")
		}
	}
}
