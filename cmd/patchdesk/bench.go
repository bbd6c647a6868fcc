package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// bench drives the real HTTP API with N concurrent clients across M tenants,
// one operation kind per phase, and reports throughput and latency
// percentiles. It only talks to the URL it is given and stops by itself.
func bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "PatchDesk base URL")
	tenants := fs.Int("tenants", 10, "tenants to create (M)")
	clients := fs.Int("clients", 16, "concurrent clients (N)")
	phase := fs.Duration("duration", 10*time.Second, "duration of each phase")
	ops := fs.String("ops", "create,list,get,patch,comment", "phases to run, in order")
	asJSON := fs.Bool("json", false, "print results as JSON")
	requests := fs.Int("requests", 0, "stop each phase after this many requests (0: run for --duration)")
	var cc costConfig
	fs.IntVar(&cc.serverPID, "server-pid", 0, "cost meter: pid of the PatchDesk server process (its CPU per op)")
	fs.IntVar(&cc.pgPID, "pg-pid", 0, "cost meter: pid of the postmaster (CPU of the whole cluster per op)")
	fs.StringVar(&cc.pgData, "pg-data", "", "cost meter: data directory of the cluster, to find the postmaster's pid")
	fs.StringVar(&cc.pgURL, "pg-url", "", "cost meter: superuser URL of PatchDesk's database (statistics, outbox and job backlog)")
	fs.StringVar(&cc.brokers, "brokers", "", "cost meter: Kafka brokers, to wait for the consumer groups' lag to reach 0")
	fs.StringVar(&cc.groups, "groups", "patchdesk-notify,patchdesk-search,patchdesk-reports", "cost meter: consumer groups to wait for")
	fs.DurationVar(&cc.drainTimeout, "drain-timeout", 5*time.Minute, "cost meter: how long to wait for side effects to drain")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--url must be an absolute URL")
	}
	if *tenants < 1 || *clients < 1 {
		return fmt.Errorf("--tenants and --clients must be at least 1")
	}
	meter, err := newCostMeter(ctx, cc)
	if err != nil {
		return err
	}
	defer meter.close(ctx)
	b := &benchRun{base: strings.TrimRight(*base, "/"), http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *clients * 2},
	}}
	if err := b.setup(ctx, *tenants, *clients); err != nil {
		return err
	}
	var results []benchResult
	for _, op := range strings.Split(*ops, ",") {
		fn, ok := b.op(op)
		if !ok {
			return fmt.Errorf("unknown op %q", op)
		}
		r, err := b.measure(ctx, meter, op, *phase, *requests, fn)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(results)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "op\trequests\terrors\treq/s\tp50 ms\tp95 ms\tp99 ms\t\n")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t\n", r.Op, r.Requests, r.Errors, r.PerSecond, r.P50, r.P95, r.P99)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if meter != nil {
		fmt.Println()
		return printCost(os.Stdout, results)
	}
	return nil
}

// measure runs one phase and, with a cost meter, waits for its side effects
// to drain and adds what the phase cost per operation.
func (b *benchRun) measure(ctx context.Context, meter *costMeter, op string, d time.Duration, limit int, fn benchOp) (benchResult, error) {
	if meter == nil {
		return b.run(ctx, op, d, limit, fn), nil
	}
	before, err := meter.start(ctx)
	if err != nil {
		return benchResult{}, err
	}
	r := b.run(ctx, op, d, limit, fn)
	drained, err := meter.drain(ctx)
	if err != nil {
		return benchResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if r.Cost, err = meter.finish(ctx, before, r.Requests, drained); err != nil {
		return benchResult{}, err
	}
	return r, nil
}

type benchClient struct {
	tenant string
	token  string
	// tickets this client created, for get/patch/comment.
	numbers []int
}

type benchRun struct {
	base    string
	http    *http.Client
	clients []*benchClient
}

type benchResult struct {
	Op        string  `json:"op"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50       float64 `json:"p50_ms"`
	P95       float64 `json:"p95_ms"`
	P99       float64 `json:"p99_ms"`
	// Cost is set when the cost meter runs.
	Cost *costResult `json:"cost,omitempty"`
}

func (b *benchRun) call(ctx context.Context, method, path, token string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		js, _ := json.Marshal(body)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := b.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if out != nil && res.StatusCode < 300 {
		return res.StatusCode, json.NewDecoder(res.Body).Decode(out)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// setup signs up the tenants and logs each client in to one of them.
func (b *benchRun) setup(ctx context.Context, tenants, clients int) error {
	prefix := "bench-" + strings.ToLower(rand.Text()[:8])
	const password = "bench password 123"
	slugs := make([]string, tenants)
	for i := range slugs {
		slugs[i] = fmt.Sprintf("%s-%d", prefix, i)
		var res struct{ Token string }
		code, err := b.call(ctx, "POST", "/api/v1/signup", "", map[string]string{
			"slug": slugs[i], "name": "Bench", "admin_email": "owner@" + slugs[i] + ".test", "admin_name": "Owner", "password": password,
		}, &res)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("signup %s: status %d %v (raise PATCHDESK_SIGNUP_PER_MINUTE on the server)", slugs[i], code, err)
		}
	}
	for i := range clients {
		slug := slugs[i%tenants]
		var res struct{ Token string }
		code, err := b.call(ctx, "POST", "/t/"+slug+"/api/v1/sessions", "", map[string]string{"email": "owner@" + slug + ".test", "password": password}, &res)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("login to %s: status %d %v", slug, code, err)
		}
		b.clients = append(b.clients, &benchClient{tenant: slug, token: res.Token})
	}
	return nil
}

type benchOp func(ctx context.Context, c *benchClient, i int) (int, error)

func (b *benchRun) op(name string) (benchOp, bool) {
	path := func(c *benchClient, rest string) string { return "/t/" + c.tenant + "/api/v1" + rest }
	pick := func(c *benchClient, i int) int {
		if len(c.numbers) == 0 {
			return 1
		}
		return c.numbers[i%len(c.numbers)]
	}
	ops := map[string]benchOp{
		"create": func(ctx context.Context, c *benchClient, i int) (int, error) {
			var t struct{ Number int }
			code, err := b.call(ctx, "POST", path(c, "/tickets"), c.token, map[string]any{
				"title": fmt.Sprintf("Bench ticket %d", i), "body": "The printer on the third floor is jammed again.",
				"priority": []string{"low", "normal", "high", "urgent"}[i%4], "tags": []string{"bench"},
			}, &t)
			if code == http.StatusCreated {
				c.numbers = append(c.numbers, t.Number)
			}
			return code, err
		},
		"list": func(ctx context.Context, c *benchClient, i int) (int, error) {
			q := []string{"", "?status=open", "?priority=high", "?tag=bench"}[i%4]
			return b.call(ctx, "GET", path(c, "/tickets"+q), c.token, nil, nil)
		},
		"get": func(ctx context.Context, c *benchClient, i int) (int, error) {
			return b.call(ctx, "GET", path(c, fmt.Sprintf("/tickets/%d", pick(c, i))), c.token, nil, nil)
		},
		"patch": func(ctx context.Context, c *benchClient, i int) (int, error) {
			return b.call(ctx, "PATCH", path(c, fmt.Sprintf("/tickets/%d", pick(c, i))), c.token,
				map[string]any{"priority": []string{"low", "normal", "high", "urgent"}[i%4]}, nil)
		},
		"comment": func(ctx context.Context, c *benchClient, i int) (int, error) {
			return b.call(ctx, "POST", path(c, fmt.Sprintf("/tickets/%d/comments", pick(c, i))), c.token,
				map[string]any{"body": "Looking into it.", "internal": i%2 == 0}, nil)
		},
	}
	fn, ok := ops[name]
	return fn, ok
}

// run executes one phase with every client in a closed loop for d, or
// until limit requests were sent when limit > 0.
func (b *benchRun) run(ctx context.Context, name string, d time.Duration, limit int, fn benchOp) benchResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errors int
		wg     sync.WaitGroup
		sent   atomic.Int64
	)
	start := time.Now()
	for _, c := range b.clients {
		wg.Go(func() {
			var local []time.Duration
			bad := 0
			for i := 0; ctx.Err() == nil; i++ {
				if limit > 0 && sent.Add(1) > int64(limit) {
					break
				}
				t0 := time.Now()
				code, err := fn(ctx, c, i)
				if ctx.Err() != nil {
					break
				}
				local = append(local, time.Since(t0))
				if err != nil || code >= 300 {
					bad++
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			errors += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	return benchResult{Op: name, Requests: len(lat), Errors: errors, PerSecond: float64(len(lat)) / elapsed.Seconds(),
		P50: pct(0.50), P95: pct(0.95), P99: pct(0.99)}
}
