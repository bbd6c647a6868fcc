package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/notify/notifytest"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// repoFile is a path from the repository root (tests run in cmd/patchdesk).
func repoFile(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// prometheusTool finds a binary of Debian's prometheus package. Without it
// the test skips locally but fails in CI (CI=true), where ops/test.sh
// installs it: the checks must never silently not run there.
func prometheusTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found in CI: ops/test.sh installs Debian's prometheus package", name)
	}
	t.Skipf("%s not installed (apt-get install prometheus; ops/test.sh does it)", name)
	return ""
}

// alertRules is the part of ops/prometheus/alerts.yml the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// runbookAnchors are the GitHub anchors of the headings of docs/runbook.md.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(repoFile("docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for line := range strings.Lines(string(b)) {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return out
}

// TestAlertRules checks ops/prometheus/alerts.yml: promtool accepts it and
// its unit tests pass; every alert has a severity, a summary, a description
// and a runbook link to a section of docs/runbook.md; and the unit tests
// hold, for every alert, a case where it fires and one where it stays quiet.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	var rules alertRules
	readYAML(t, repoFile("ops", "prometheus", "alerts.yml"), &rules)
	anchors := runbookAnchors(t)
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			_, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "docs/runbook.md#")
			if !anchors[anchor] {
				t.Errorf("%s: runbook_url %q names no section of docs/runbook.md", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	if len(alerts) < 15 {
		t.Fatalf("only %d alerts in alerts.yml", len(alerts))
	}

	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, repoFile("ops", "prometheus", "alerts_test.yml"), &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("alert %s: alerts_test.yml needs a case where it fires (%v) and one where it stays quiet (%v)", a, fires[a], quiet[a])
		}
	}

	promtool := prometheusTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", repoFile("ops", "prometheus", "alerts.yml")},
		{"test", "rules", repoFile("ops", "prometheus", "alerts_test.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// opsQuery is one PromQL expression the ops kit relies on, and where.
type opsQuery struct {
	where, expr string
}

// opsQueries are every expression of the alert rules and of the dashboard.
func opsQueries(t *testing.T) []opsQuery {
	t.Helper()
	var rules alertRules
	readYAML(t, repoFile("ops", "prometheus", "alerts.yml"), &rules)
	var out []opsQuery
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, opsQuery{"alerts.yml " + r.Alert + r.Record, r.Expr})
		}
	}
	b, err := os.ReadFile(repoFile("ops", "grafana", "patchdesk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("patchdesk.json: %v", err)
	}
	panels := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out = append(out, opsQuery{"dashboard panel " + p.Title, tg.Expr})
			panels++
		}
	}
	if panels < 10 {
		t.Fatalf("the dashboard has only %d queries", panels)
	}
	return out
}

var (
	metricRE = regexp.MustCompile(`\bpatchdesk_[a-zA-Z0-9_]+`)
	// selectorRE is a metric with its label matchers.
	selectorRE = regexp.MustCompile(`\b(patchdesk_[a-zA-Z0-9_]+)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|on|ignoring|without)\s*\(([^)]*)\)`)
	// replaceRE finds label_replace's destination label, which exists only
	// in the result, not on the scraped series.
	replaceRE = regexp.MustCompile(`"([a-zA-Z_][a-zA-Z0-9_]*)",\s*"[^"]*",\s*"[a-zA-Z_][a-zA-Z0-9_]*",\s*"[^"]*"\)`)
)

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"instance", "job"}

// requiredLabels maps every patchdesk_ metric the queries name to the
// labels they expect it to carry: the labels of its own selector, and the
// labels the expression groups or joins on (every metric of the expression
// must have those, or the query silently drops it).
func requiredLabels(t *testing.T, queries []opsQuery) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{} // metric → label → where
	need := func(metric, label, where string) {
		if out[metric] == nil {
			out[metric] = map[string][]string{}
		}
		if label != "" && !slices.Contains(targetLabels, label) && !slices.Contains(out[metric][label], where) {
			out[metric][label] = append(out[metric][label], where)
		}
	}
	for _, q := range queries {
		synthetic := map[string]bool{}
		for _, m := range replaceRE.FindAllStringSubmatch(q.expr, -1) {
			synthetic[m[1]] = true
		}
		metrics := metricRE.FindAllString(q.expr, -1)
		for _, m := range metrics {
			need(m, "", q.where)
		}
		for _, s := range selectorRE.FindAllStringSubmatch(q.expr, -1) {
			for _, m := range matcherRE.FindAllStringSubmatch(s[2], -1) {
				need(s[1], m[1], q.where)
			}
		}
		for _, g := range groupingRE.FindAllStringSubmatch(q.expr, -1) {
			for l := range strings.SplitSeq(g[1], ",") {
				l = strings.TrimSpace(l)
				if l == "" || synthetic[l] {
					continue
				}
				for _, m := range metrics {
					if l == "le" && !strings.HasSuffix(m, "_bucket") {
						continue
					}
					need(m, l, q.where)
				}
			}
		}
	}
	return out
}

// TestRequiredLabelsParser: the query parser finds metrics, selector
// labels and grouping labels, and leaves out label_replace's results.
func TestRequiredLabelsParser(t *testing.T) {
	t.Parallel()
	got := requiredLabels(t, []opsQuery{{"q", `sum by (class, database) (label_replace(rate(patchdesk_a_total{method=~"GET", le="1"}[5m]), "class", "read", "method", "GET")) / on (instance) patchdesk_b`}})
	want := map[string][]string{"patchdesk_a_total": {"database", "le", "method"}, "patchdesk_b": {"database"}}
	for m, labels := range want {
		var have []string
		for l := range got[m] {
			have = append(have, l)
		}
		slices.Sort(have)
		if !slices.Equal(have, labels) {
			t.Errorf("%s: labels %v, want %v", m, have, labels)
		}
	}
	if len(got) != len(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}

// exposition parses the Prometheus text format into metric → label names.
func exposition(t *testing.T, body string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	line := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string]bool{}
		}
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			out[m[1]][l[1]] = true
		}
	}
	return out
}

// missingMetrics lists what the queries need that the exported metrics
// (metric → label names) lack.
func missingMetrics(required map[string]map[string][]string, have map[string]map[string]bool) []string {
	var out []string
	for m, labels := range required {
		if have[m] == nil {
			out = append(out, fmt.Sprintf("metric %s (used by %v)", m, firstUse(labels)))
			continue
		}
		for l, where := range labels {
			if !have[m][l] {
				out = append(out, fmt.Sprintf("label %s of %s (used by %v)", l, m, where))
			}
		}
	}
	slices.Sort(out)
	return out
}

func firstUse(labels map[string][]string) []string {
	for _, w := range labels {
		return w
	}
	return nil
}

// TestScrape runs a real `patchdesk serve`, makes it do what exports every
// series (a tenant, a webhook, tickets and comments, their events through
// every consumer group and a delivery), and checks that every metric and
// label the alert rules and the dashboard use is exported: in the binary's
// own /metrics, and through a real Prometheus server (Debian's) that
// scrapes it and evaluates the rules, queried over its HTTP API. A renamed
// metric or label fails here instead of blanking a panel.
func TestScrape(t *testing.T) {
	t.Parallel()
	queries := opsQueries(t)
	required := requiredLabels(t, queries)
	dsn := tenancytest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"serve", "--database-url", dsn, "--addr", addr, "--metrics-addr", metricsAddr,
			"--data-dir", t.TempDir(), "--webhook-allow-private", "--signups-per-minute", "100", "--log-format", "json"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	waitHTTP(t, "http://"+addr+"/readyz")

	hook := notifytest.StartHook(t, "scrape test secret!!")
	base := "http://" + addr
	token := post(t, base+"/api/v1/signup", "", map[string]string{
		"slug": "scrape", "name": "Scrape", "admin_email": "o@scrape.test", "admin_name": "O", "password": "long password 1",
	})["token"].(string)
	post(t, base+"/t/scrape/api/v1/webhooks", token, map[string]any{"url": hook.URL, "events": []string{"*"}, "secret": "scrape test secret!!"})
	ticket := post(t, base+"/t/scrape/api/v1/tickets", token, map[string]any{"title": "scraped", "body": "x"})
	post(t, fmt.Sprintf("%s/t/scrape/api/v1/tickets/%v/comments", base, ticket["number"]), token, map[string]any{"body": "a comment"})

	// A read: the SLO rules' read class needs one.
	req, _ := http.NewRequest("GET", base+"/t/scrape/api/v1/tickets", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("list tickets: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	metricsURL := "http://" + metricsAddr + "/metrics"
	var missing []string
	// Eventually fails the test on timeout: say then what was missing.
	t.Cleanup(func() {
		if t.Failed() && len(missing) > 0 {
			t.Logf("missing:\n%s", strings.Join(missing, "\n"))
		}
	})
	apitest.Eventually(t, 60*time.Second, "every metric the ops kit uses in /metrics", func() bool {
		res, err := http.Get(metricsURL)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var sb strings.Builder
		if _, err := bufio.NewReader(res.Body).WriteTo(&sb); err != nil {
			return false
		}
		missing = missingMetrics(required, exposition(t, sb.String()))
		return len(missing) == 0
	})
	if len(missing) > 0 {
		t.Fatalf("/metrics lacks what alerts.yml and the dashboard use:\n%s", strings.Join(missing, "\n"))
	}

	prom := startPrometheus(t, metricsAddr)
	apitest.Eventually(t, 60*time.Second, "every metric the ops kit uses in Prometheus", func() bool {
		have := map[string]map[string]bool{}
		for m := range required {
			series, err := prom.series(m)
			if err != nil {
				t.Logf("series %s: %v", m, err)
				return false
			}
			for _, s := range series {
				if have[m] == nil {
					have[m] = map[string]bool{}
				}
				for l := range s {
					have[m][l] = true
				}
			}
		}
		missing = missingMetrics(required, have)
		return len(missing) == 0
	})
	if len(missing) > 0 {
		t.Fatalf("Prometheus did not get what alerts.yml and the dashboard use:\n%s", strings.Join(missing, "\n"))
	}
	// The rules load and evaluate against the real series without errors,
	// and the route classes of the SLO rules come out of the real labels.
	apitest.Eventually(t, 60*time.Second, "rules evaluated without errors", func() bool {
		bad, err := prom.ruleHealth()
		if err != nil || len(bad) > 0 {
			t.Logf("rules: %v %v", bad, err)
			return false
		}
		classes, err := prom.labelValues("patchdesk:http_requests:rate5m", "class")
		t.Logf("route classes in patchdesk:http_requests:rate5m: %v %v", classes, err)
		return err == nil && slices.Contains(classes, "write") && slices.Contains(classes, "read")
	})
}

// promServer is a Prometheus server started for a test.
type promServer struct{ base string }

// startPrometheus runs Debian's prometheus on a free loopback port with a
// temporary configuration that scrapes target every second and loads the
// alert rules; it is killed when the test ends.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin := prometheusTool(t, "prometheus")
	dir := t.TempDir()
	rules, err := filepath.Abs(repoFile("ops", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: patchdesk
    static_configs: [{targets: [%q]}]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+listen)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", tail(string(b), 4000))
		}
	})
	p := &promServer{base: "http://" + listen}
	waitHTTP(t, p.base+"/-/ready")
	return p
}

// get queries the HTTP API and decodes its data field into v.
func (p *promServer) get(path string, q url.Values, v any) error {
	res, err := http.Get(p.base + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", path, body.Error)
	}
	return json.Unmarshal(body.Data, v)
}

// series returns the label sets of a metric's series.
func (p *promServer) series(metric string) ([]map[string]string, error) {
	var out []map[string]string
	err := p.get("/api/v1/series", url.Values{"match[]": {metric}}, &out)
	return out, err
}

// labelValues returns the values of label over the series of an instant query.
func (p *promServer) labelValues(query, label string) ([]string, error) {
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {query}}, &data); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range data.Result {
		out = append(out, r.Metric[label])
	}
	return out, nil
}

// ruleHealth lists the rules that are not healthy, and fails when no rule
// has been evaluated yet.
func (p *promServer) ruleHealth() ([]string, error) {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", url.Values{}, &data); err != nil {
		return nil, err
	}
	var bad []string
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				bad = append(bad, fmt.Sprintf("%s: %s %s", r.Name, r.Health, r.LastError))
			}
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no rules loaded")
	}
	return bad, nil
}

// TestComposeStack validates docker-compose.yml's operations services
// (they cannot run here): Prometheus mounts its configuration and the
// alert rules, scrapes the PatchDesk services on the port their
// PATCHDESK_METRICS_ADDR opens, and promtool accepts that configuration;
// Grafana mounts its provisioning and the dashboard where the provider
// looks; every mounted file exists.
func TestComposeStack(t *testing.T) {
	t.Parallel()
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			DependsOn   any               `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	readYAML(t, repoFile("docker-compose.yml"), &compose)
	mounts := map[string]map[string]string{} // service → container path → host path
	for name, svc := range compose.Services {
		mounts[name] = map[string]string{}
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("%s: volume %q has no target", name, v)
				continue
			}
			host, target := parts[0], parts[1]
			mounts[name][target] = host
			if strings.HasPrefix(host, "./") {
				if _, err := os.Stat(repoFile(host)); err != nil {
					t.Errorf("%s mounts %s, which does not exist: %v", name, host, err)
				}
			} else if _, ok := compose.Volumes[host]; !ok {
				t.Errorf("%s uses volume %q, not declared under volumes", name, host)
			}
		}
	}
	for _, name := range []string{"prometheus", "grafana", "patchdesk", "worker"} {
		if _, ok := compose.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no %s service", name)
		}
	}
	if img := compose.Services["prometheus"].Image; !strings.HasPrefix(img, "prom/prometheus:v") {
		t.Errorf("prometheus image %q: want a pinned prom/prometheus:vX.Y.Z", img)
	}
	if img := compose.Services["grafana"].Image; !regexp.MustCompile(`^grafana/grafana:\d+\.\d+\.\d+$`).MatchString(img) {
		t.Errorf("grafana image %q: want a pinned grafana/grafana:X.Y.Z", img)
	}

	// Prometheus: its configuration, the rules where it loads them, targets
	// that are compose services exporting metrics on that port.
	pm := mounts["prometheus"]
	cfgArg := ""
	for _, a := range compose.Services["prometheus"].Command {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgArg = v
		}
	}
	if pm[cfgArg] != "./ops/prometheus/prometheus.yml" {
		t.Fatalf("prometheus: --config.file=%s is not ./ops/prometheus/prometheus.yml (mounts %v)", cfgArg, pm)
	}
	var promCfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, repoFile("ops", "prometheus", "prometheus.yml"), &promCfg)
	if len(promCfg.RuleFiles) != 1 || pm[promCfg.RuleFiles[0]] != "./ops/prometheus/alerts.yml" {
		t.Errorf("prometheus loads rules %v, which are not the mounted ./ops/prometheus/alerts.yml (mounts %v)", promCfg.RuleFiles, pm)
	}
	scraped := map[string]bool{}
	for _, sc := range promCfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := strings.Cut(target, ":")
				svc, ok := compose.Services[host]
				if !ok {
					t.Errorf("prometheus scrapes %s: no such compose service", target)
					continue
				}
				if addr := svc.Environment["PATCHDESK_METRICS_ADDR"]; !strings.HasSuffix(addr, ":"+port) || strings.HasPrefix(addr, "127.") {
					t.Errorf("prometheus scrapes %s but the service's PATCHDESK_METRICS_ADDR is %q", target, addr)
				}
				scraped[host] = true
			}
		}
	}
	if !scraped["patchdesk"] || !scraped["worker"] {
		t.Errorf("prometheus must scrape the patchdesk and worker services, scrapes %v", scraped)
	}

	// Grafana: provisioning mounted, the dashboard provider's path holds the dashboard.
	gm := mounts["grafana"]
	if gm["/etc/grafana/provisioning"] != "./ops/grafana/provisioning" {
		t.Errorf("grafana does not mount ./ops/grafana/provisioning at /etc/grafana/provisioning: %v", gm)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, repoFile("ops", "grafana", "provisioning", "dashboards", "patchdesk.yml"), &provider)
	if len(provider.Providers) != 1 || gm[provider.Providers[0].Options.Path+"/patchdesk.json"] != "./ops/grafana/patchdesk.json" {
		t.Errorf("the dashboard provider does not find ./ops/grafana/patchdesk.json (providers %+v, mounts %v)", provider.Providers, gm)
	}
	var ds struct {
		Datasources []struct {
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, repoFile("ops", "grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("grafana datasource: want the compose prometheus as default, got %+v", ds.Datasources)
	}

	// promtool validates the compose configuration with the rule path
	// mapped to the repository's file.
	promtool := prometheusTool(t, "promtool")
	raw, err := os.ReadFile(repoFile("ops", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := filepath.Abs(repoFile("ops", "prometheus", "alerts.yml"))
	local := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(local, []byte(strings.ReplaceAll(string(raw), promCfg.RuleFiles[0], rules)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", local).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}
