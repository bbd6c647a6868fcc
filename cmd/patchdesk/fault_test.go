package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/notify/notifytest"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// childEnv makes the test binary act as the patchdesk binary: the fault test
// runs it as separate processes (built once: this binary) so that it can kill
// them with -9.
const childEnv = "PATCHDESK_TEST_AS_BINARY"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// child is a patchdesk process (this test binary in its binary role).
type child struct {
	name string
	args []string
	env  []string
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *child) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], c.args...)
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), c.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", c.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
}

// stop sends sig and waits for the process to exit.
func (c *child) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop on %v within 30s", c.name, sig)
	}
}

// logs returns the process's warnings and errors (the first 60), then its last lines.
func (c *child) logs() string {
	b, _ := os.ReadFile(c.log)
	var problems []string
	for _, line := range strings.Split(string(b), "\n") {
		if len(problems) < 60 && (strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)) {
			problems = append(problems, tail(line, 600))
		}
	}
	return strings.Join(problems, "\n") + "\n...\n" + tail(string(b), 2000)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func httpOK(u string) bool {
	res, err := http.Get(u)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// attempt is one ticket creation as the client saw it.
type attempt struct {
	start, end time.Time
	status     int // 0: transport error
	number     int
}

// loadClient creates tickets one after another until stopped.
type loadClient struct {
	base, token string
	http        *http.Client
	mu          sync.Mutex
	log         []attempt
}

func (c *loadClient) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		a := attempt{start: time.Now()}
		body, _ := json.Marshal(map[string]any{"title": fmt.Sprintf("faultload %s ticket %d", batchWord(i), i), "body": "x",
			"requester_email": faultRequester})
		req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, c.base+"/tickets", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.token)
		if res, err := c.http.Do(req); err == nil {
			a.status = res.StatusCode
			var out struct{ Number int }
			_ = json.NewDecoder(res.Body).Decode(&out)
			res.Body.Close()
			a.number = out.Number
		}
		a.end = time.Now()
		c.mu.Lock()
		c.log = append(c.log, a)
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(40 * time.Millisecond):
		}
	}
}

func (c *loadClient) attempts() []attempt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]attempt(nil), c.log...)
}

// successesAfter counts 201s that started after t.
func (c *loadClient) successesAfter(t time.Time) int {
	n := 0
	for _, a := range c.attempts() {
		if a.status == http.StatusCreated && a.start.After(t) {
			n++
		}
	}
	return n
}

const faultRequester = "requester@fault.test"

// searchBatch is how many tickets share a title word: search answers at
// most 100 hits without a cursor, so the test counts batch by batch.
const searchBatch = 50

// batchWord is the title word shared by the batch of ticket i.
func batchWord(i int) string {
	k := i / searchBatch
	return "fl" + string(rune('a'+k/26%26)) + string(rune('a'+k%26))
}

var batchOf = regexp.MustCompile(`faultload (fl[a-z]{2}) `)

// outage is the record of one fault.
type outage struct {
	name       string
	start, end time.Time // fault injected; dependency back
}

// TestFaultsLoseNoSideEffects (issue 21.4): a client creates tickets while
// PostgreSQL restarts, PostgreSQL is stopped 10 s, the broker is stopped
// 10 s and the worker is killed with -9; afterwards every acknowledged
// ticket is stored, each ticket got exactly one webhook and one email (one
// Message-ID: a crash between send and record may repeat it), search
// and reports count every ticket, nothing was dead-lettered, and the client
// saw only 201 and 503 (500s counted apart until the platform branch lands).
func TestFaultsLoseNoSideEffects(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: about two minutes")
	}
	testStart := time.Now()
	pg := tenancytest.NewCluster(t)
	hook := notifytest.StartHook(t, "fault test webhook secret")
	smtp := notifytest.StartSMTP(t)
	dir := t.TempDir()
	logDir := dir
	if d := os.Getenv("PATCHDESK_FAULT_LOGS"); d != "" { // keep the process logs for a post-mortem
		logDir = d
	}
	kafkaAddr, apiAddr, workerAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := []string{"PATCHDESK_JOB_RESCUE_AFTER=20s", "PATCHDESK_DELIVERY_TIMEOUT=15s", "PATCHDESK_DELIVERY_RECONCILE_EVERY=5s"}
	common := []string{"--database-url", pg.URL(), "--kafka-brokers", kafkaAddr, "--webhook-allow-private",
		"--smtp-url", "smtp://" + smtp.Addr, "--log-format", "json", "--token-per-minute", "100000"}
	broker := &child{name: "broker", args: []string{"kafka", "--addr", kafkaAddr, "--data-dir", filepath.Join(dir, "kafka")}, env: env, log: filepath.Join(logDir, "broker.log")}
	api := &child{name: "api", args: append([]string{"serve", "--role=api", "--addr", apiAddr, "--signups-per-minute", "100",
		"--data-dir", filepath.Join(dir, "api")}, common...), env: env, log: filepath.Join(logDir, "api.log")}
	worker := &child{name: "worker", args: append([]string{"worker", "--addr", workerAddr, "--data-dir", filepath.Join(dir, "worker")}, common...),
		env: env, log: filepath.Join(logDir, "worker.log")}
	procs := []*child{broker, api, worker}
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop(t, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- %s log (tail) ---\n%s", p.name, p.logs())
			}
		}
	})
	broker.start(t)
	if !waitFor(30*time.Second, func() bool { return dial(kafkaAddr) }) {
		t.Fatal("broker did not listen")
	}
	api.start(t)
	if !waitFor(90*time.Second, func() bool { return httpOK("http://" + apiAddr + "/readyz") }) {
		t.Fatal("api not ready")
	}
	worker.start(t)
	if !waitFor(90*time.Second, func() bool { return httpOK("http://" + workerAddr + "/healthz") }) {
		t.Fatal("worker not healthy")
	}
	base := "http://" + apiAddr
	token := post(t, base+"/api/v1/signup", "", map[string]string{
		"slug": "fault", "name": "Fault", "admin_email": "o@fault.test", "admin_name": "O", "password": "long password 1",
	})["token"].(string)
	post(t, base+"/t/fault/api/v1/webhooks", token, map[string]any{"url": hook.URL, "events": []string{"ticket.created"},
		"secret": "fault test webhook secret"})
	t.Logf("set up in %s", time.Since(testStart).Round(time.Millisecond))

	client := &loadClient{base: base + "/t/fault/api/v1", token: token, http: &http.Client{Timeout: 30 * time.Second}}
	ctx, stopClient := context.WithCancel(context.Background())
	clientDone := make(chan struct{})
	go func() { defer close(clientDone); client.run(ctx) }()
	defer func() { stopClient(); <-clientDone }()
	steady := func(what string, n int) {
		t.Helper()
		since := time.Now()
		if !waitFor(60*time.Second, func() bool { return client.successesAfter(since) >= n }) {
			t.Fatalf("no %d successes %s", n, what)
		}
	}
	steady("at start", 10)

	var outages []outage
	fault := func(name string, inject func()) {
		o := outage{name: name, start: time.Now()}
		inject()
		o.end = time.Now()
		outages = append(outages, o)
		steady("after "+name, 10)
	}
	fault("postgres restart", func() { pg.Ctl(t, "restart", "-m", "fast") })
	fault("postgres stopped 10s", func() {
		pg.Ctl(t, "stop", "-m", "fast")
		time.Sleep(10 * time.Second) // the outage itself, not a wait for something
		pg.Ctl(t, "start")
	})
	fault("broker stopped 10s", func() {
		broker.stop(t, syscall.SIGTERM)
		time.Sleep(10 * time.Second)
		broker.start(t)
		if !waitFor(30*time.Second, func() bool { return dial(kafkaAddr) }) {
			t.Fatal("broker did not come back")
		}
	})
	fault("worker kill -9", func() {
		worker.stop(t, syscall.SIGKILL)
		worker.start(t)
		if !waitFor(60*time.Second, func() bool { return httpOK("http://" + workerAddr + "/healthz") }) {
			t.Fatal("worker did not come back")
		}
	})
	stopClient()
	<-clientDone
	loadEnd := time.Now()
	attempts := client.attempts()
	report(t, attempts, outages)

	byStatus := map[int]int{}
	acked := map[int]bool{}
	for _, a := range attempts {
		byStatus[a.status]++
		if a.status == http.StatusCreated {
			acked[a.number] = true
		}
	}
	t.Logf("client: %d requests, by status %v (0 = transport error)", len(attempts), byStatus)
	for status, n := range byStatus {
		switch status {
		case http.StatusCreated, http.StatusServiceUnavailable:
		default:
			t.Errorf("%d answers with status %d; the client may only see 201 and 503", n, status)
		}
	}

	// Within 2 minutes every side effect has arrived, exactly once.
	v := &verifier{t: t, base: client.base, token: token, hook: hook, smtp: smtp, kafka: kafkaAddr}
	stored := v.storedTickets()
	for n := range acked {
		if _, ok := stored[n]; !ok {
			t.Errorf("acknowledged ticket #%d is not stored", n)
		}
	}
	var last string
	ok := waitFor(2*time.Minute, func() bool {
		last = v.missing(stored)
		return last == ""
	})
	arrived := time.Since(loadEnd)
	if !ok {
		t.Errorf("2 minutes after the load stopped: %s", last)
		t.Logf("dead letters: %d; broker: %s", v.deadLetters(), v.diagnose(stored))
		t.FailNow()
	}
	t.Logf("all side effects of %d tickets arrived %s after the load stopped (%s after the last fault ended); whole test %s; %s",
		len(stored), arrived.Round(time.Millisecond), time.Since(outages[len(outages)-1].end).Round(time.Millisecond),
		time.Since(testStart).Round(time.Second), loadavg())
	t.Logf("emails redelivered with a Message-ID already delivered (at-least-once, shown once by mail clients): %d", v.emailRedeliveries())
	if dup := v.duplicates(); dup != "" {
		t.Error(dup)
	}
	if n := v.deadLetters(); n != 0 {
		t.Errorf("%d messages dead-lettered", n)
	}
}

func dial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	return "load " + strings.Join(strings.Fields(string(b))[:3], " ")
}

// report prints, per fault, the requests made while it lasted (by status)
// and the time from the dependency's return to the first success.
func report(t *testing.T, attempts []attempt, outages []outage) {
	t.Helper()
	for _, o := range outages {
		during := map[int]int{}
		var firstOK time.Time
		for _, a := range attempts {
			if a.status == http.StatusCreated && a.start.After(o.end) {
				if firstOK.IsZero() || a.end.Before(firstOK) {
					firstOK = a.end
				}
			}
		}
		for _, a := range attempts {
			if a.end.After(o.start) && a.start.Before(firstOK) {
				during[a.status]++
			}
		}
		t.Logf("%-22s lasted %6s; requests until the first success after: %v; first success %s after the dependency returned",
			o.name, o.end.Sub(o.start).Round(time.Millisecond), during, firstOK.Sub(o.end).Round(time.Millisecond))
	}
}

// verifier checks the side effects of the stored tickets.
type verifier struct {
	t           *testing.T
	base, token string
	hook        *notifytest.Hook
	smtp        *notifytest.SMTP
	kafka       string
}

func (v *verifier) get(path string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, v.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+v.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("GET %s: %d %s", path, res.StatusCode, b)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// pages reads every page of a list and returns the ticket numbers in it,
// with their titles.
func (v *verifier) pages(path string) (map[int]string, error) {
	seen := map[int]string{}
	cursor := ""
	for {
		var pg struct {
			Items []struct {
				Number int
				Title  string
			}
			NextCursor *string `json:"next_cursor"`
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		if err := v.get(path+sep+"limit=100&cursor="+url.QueryEscape(cursor), &pg); err != nil {
			return nil, err
		}
		for _, it := range pg.Items {
			seen[it.Number] = it.Title
		}
		if pg.NextCursor == nil {
			return seen, nil
		}
		cursor = *pg.NextCursor
	}
}

// storedTickets returns the tickets stored, by number, with their titles.
func (v *verifier) storedTickets() map[int]string {
	v.t.Helper()
	var seen map[int]string
	var err error
	if !waitFor(30*time.Second, func() bool { seen, err = v.pages("/tickets"); return err == nil }) {
		v.t.Fatalf("list tickets: %v", err)
	}
	return seen
}

// searchMissing is how many stored tickets search does not find, asking
// batch by batch.
func (v *verifier) searchMissing(stored map[int]string) (int, error) {
	batches := map[string]bool{}
	for _, title := range stored {
		if m := batchOf.FindStringSubmatch(title); m != nil {
			batches[m[1]] = true
		}
	}
	found := map[int]bool{}
	for b := range batches {
		var pg struct{ Items []struct{ Number int } }
		if err := v.get("/search?limit=100&q="+b, &pg); err != nil {
			return len(stored), err
		}
		for _, it := range pg.Items {
			found[it.Number] = true
		}
	}
	n := 0
	for k := range stored {
		if !found[k] {
			n++
		}
	}
	return n, nil
}

var (
	subjectNumber = regexp.MustCompile(`Subject: \[#(\d+)\]`)
	messageID     = regexp.MustCompile(`(?mi)^Message-ID: *(\S+)`)
)

// emailed returns the ticket numbers of the ticket-received emails, with the
// count of distinct emails (Message-IDs) for each. Delivery is at-least-once:
// a worker killed between the SMTP send and its record sends the same email
// again, with the same Message-ID, which mail clients show once; a second
// email for one ticket would carry another Message-ID and is counted.
func (v *verifier) emailed() map[int]int {
	out := map[int]int{}
	seen := map[string]bool{}
	for _, m := range v.smtp.To(faultRequester) {
		s := subjectNumber.FindStringSubmatch(m.Data)
		if s == nil {
			continue
		}
		id := messageID.FindStringSubmatch(m.Data)
		if id == nil {
			v.t.Errorf("email without a Message-ID: %s", tail(m.Data, 200))
			continue
		}
		if seen[id[1]] {
			continue
		}
		seen[id[1]] = true
		n, _ := strconv.Atoi(s[1])
		out[n]++
	}
	return out
}

// emailRedeliveries is the number of emails that arrived again with a
// Message-ID already seen (at-least-once delivery across a crash).
func (v *verifier) emailRedeliveries() int {
	seen, again := map[string]bool{}, 0
	for _, m := range v.smtp.To(faultRequester) {
		if id := messageID.FindStringSubmatch(m.Data); id != nil {
			if seen[id[1]] {
				again++
			}
			seen[id[1]] = true
		}
	}
	return again
}

// hooked returns the ticket numbers of the webhook deliveries, with counts.
func (v *verifier) hooked() map[int]int {
	out := map[int]int{}
	counts, _ := v.hook.Counts()
	for id, c := range counts {
		var body struct {
			Data struct{ Ticket struct{ Number int } } `json:"data"`
		}
		_ = json.Unmarshal(v.hook.Body(id), &body)
		out[body.Data.Ticket.Number] += c
	}
	return out
}

// missing describes what has not arrived yet, or "" when everything has.
func (v *verifier) missing(stored map[int]string) string {
	var gaps []string
	hooked, emailed := v.hooked(), v.emailed()
	for name, got := range map[string]map[int]int{"webhooks": hooked, "emails": emailed} {
		if n := countMissing(stored, got); n > 0 {
			gaps = append(gaps, fmt.Sprintf("%d of %d tickets without %s", n, len(stored), name))
		}
	}
	if n, err := v.searchMissing(stored); err != nil || n > 0 {
		gaps = append(gaps, fmt.Sprintf("search misses %d of %d tickets (%v)", n, len(stored), err))
	}
	today := time.Now().UTC()
	var sum struct{ Created int }
	err := v.get("/reports/summary?from="+today.AddDate(0, 0, -1).Format(time.DateOnly)+"&to="+today.AddDate(0, 0, 1).Format(time.DateOnly), &sum)
	if err != nil || sum.Created != len(stored) {
		gaps = append(gaps, fmt.Sprintf("reports count %d created of %d (%v)", sum.Created, len(stored), err))
	}
	return strings.Join(gaps, "; ")
}

func countMissing(want map[int]string, got map[int]int) int {
	n := 0
	for k := range want {
		if got[k] == 0 {
			n++
		}
	}
	return n
}

// duplicates reports side effects that happened more than once.
func (v *verifier) duplicates() string {
	var out []string
	for name, got := range map[string]map[int]int{"webhooks": v.hooked(), "emails": v.emailed()} {
		for n, c := range got {
			if c != 1 {
				out = append(out, fmt.Sprintf("ticket #%d: %d %s", n, c, name))
			}
		}
	}
	for id, c := range v.hook.Deliveries() {
		if c != 1 {
			out = append(out, fmt.Sprintf("delivery %s posted %d times", id, c))
		}
	}
	if _, invalid := v.hook.Counts(); invalid != 0 {
		out = append(out, fmt.Sprintf("%d webhooks with a bad signature", invalid))
	}
	return strings.Join(out, "; ")
}

// deadLetters is the number of messages in the dead-letter topic.
func (v *verifier) deadLetters() int64 {
	v.t.Helper()
	conn, err := kafkago.DialLeader(context.Background(), "tcp", v.kafka, bus.TopicDeadLetter, 0)
	if err != nil {
		v.t.Fatalf("dial dead-letter topic: %v", err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil && !errors.Is(err, io.EOF) {
		v.t.Fatalf("dead-letter offsets: %v", err)
	}
	return last - first
}

// diagnose tells, for a failed run, whether the missing tickets' events are
// on the broker and where each consumer group stands on each partition.
func (v *verifier) diagnose(stored map[int]string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	onBroker := map[int]int{}
	ends := map[int]int64{}
	for p := range 6 {
		conn, err := kafkago.DialLeader(ctx, "tcp", v.kafka, bus.TopicEvents, p)
		if err != nil {
			return err.Error()
		}
		first, last, err := conn.ReadOffsets()
		conn.Close()
		if err != nil {
			return err.Error()
		}
		ends[p] = last
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{v.kafka}, Topic: bus.TopicEvents, Partition: p, MaxWait: 100 * time.Millisecond})
		_ = r.SetOffset(first)
		for off := first; off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				break
			}
			var ev struct {
				Type string
				Data struct{ Ticket struct{ Number int } }
			}
			if json.Unmarshal(m.Value, &ev) == nil && ev.Type == "ticket.created" {
				onBroker[ev.Data.Ticket.Number]++
			}
		}
		r.Close()
		out = append(out, fmt.Sprintf("p%d=[%d,%d)", p, first, last))
	}
	absent := 0
	for n := range stored {
		if onBroker[n] == 0 {
			absent++
		}
	}
	out = append(out, fmt.Sprintf("%d of %d stored tickets have no ticket.created on the broker", absent, len(stored)))
	client := &kafkago.Client{Addr: kafkago.TCP(v.kafka), Transport: &kafkago.Transport{}}
	for _, g := range []string{"patchdesk-notify", "patchdesk-search", "patchdesk-reports"} {
		res, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: g, Topics: map[string][]int{bus.TopicEvents: {0, 1, 2, 3, 4, 5}}})
		if err != nil {
			out = append(out, g+": "+err.Error())
			continue
		}
		var parts []string
		for _, p := range res.Topics[bus.TopicEvents] {
			parts = append(parts, fmt.Sprintf("p%d@%d/%d", p.Partition, p.CommittedOffset, ends[p.Partition]))
		}
		out = append(out, g+" committed "+strings.Join(parts, " "))
	}
	return strings.Join(out, "; ")
}
