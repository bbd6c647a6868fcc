package apitest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"

	"github.com/patchdesk/patchdesk/docs"
)

// CountFileEnv names a file to which every test server appends how many
// responses it validated, one number a line, so that ops/test.sh can report
// the total of a full run (each test package is its own process).
const CountFileEnv = "PATCHDESK_CONTRACT_COUNT_FILE"

// contract validates HTTP traffic against docs/openapi.yaml. One per test
// process: building the validator parses the whole document.
type contract struct {
	v validator.Validator
}

// loadContract builds the validator once per process; a test binary that
// never starts a server never pays for it.
var loadContract = sync.OnceValues(func() (*contract, error) {
	spec, err := docs.OpenAPI()
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi.yaml validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %s", describe(verrs))
	}
	return &contract{v: v}, nil
})

// validated counts, over the whole test process, the responses checked
// against the document.
var validated atomic.Int64

// Validated returns how many responses this test process has validated
// against docs/openapi.yaml (print it from TestMain).
func Validated() int64 { return validated.Load() }

// Main is a test package's TestMain: it runs the tests and reports how many
// responses they validated against docs/openapi.yaml (ops/test.sh prints
// the sum of a full run).
func Main(m *testing.M) {
	code := m.Run()
	fmt.Fprintf(os.Stderr, "apitest: %d responses validated against docs/openapi.yaml\n", Validated())
	os.Exit(code)
}

// contractTransport checks every request a test sends and every response
// it gets against docs/openapi.yaml, and fails the round trip (so the
// test's call fails) on any mismatch:
//   - a request to a documented operation is validated (parameters, body,
//     security); the response is validated too (status documented, body
//     matching its schema, content type declared);
//   - a request the document calls invalid must be refused with a 4xx, or
//     the server accepts what the document forbids;
//   - a request to a path or method the document lacks must be answered 404
//     or 405 problem+json, or the server serves an undocumented route.
type contractTransport struct {
	base   http.RoundTripper
	c      *contract
	server *Server
}

// RoundTrip sends req and checks the exchange.
func (ct *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("contract: read request body: %w", err)
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	res, err := ct.base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if err != nil {
		return res, nil // the caller meets the same error reading the body
	}
	if mismatch := ct.check(req, reqBody, res, resBody); mismatch != "" {
		return nil, fmt.Errorf("docs/openapi.yaml does not match this exchange: %s %s → %d %s\n%s\nresponse body: %.600s",
			req.Method, req.URL.RequestURI(), res.StatusCode, res.Header.Get("Content-Type"), mismatch, resBody)
	}
	return res, nil
}

// check returns what does not match, or "".
func (ct *contractTransport) check(req *http.Request, reqBody []byte, res *http.Response, resBody []byte) string {
	if res.StatusCode == http.StatusMovedPermanently && cleanPath(req.URL.Path) != req.URL.Path {
		// The router redirects a path with dot segments or doubled slashes
		// to its clean form before any operation runs (documented in
		// info.description); the redirect is not an operation's answer.
		return ""
	}
	vreq := documentedRequest(req, reqBody, ct.server)
	ok, reqErrs := ct.c.v.ValidateHttpRequestSync(vreq)
	if !ok && unknownRoute(reqErrs) {
		isProblem := strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json")
		if (res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed) && isProblem {
			return ""
		}
		return "the route is not in the document but the server answered it:\n" + describe(reqErrs)
	}
	vres := &http.Response{StatusCode: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(resBody)), Request: vreq}
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	okRes, resErrs := ct.c.v.ValidateHttpResponse(vreq, vres)
	validated.Add(1)
	ct.server.validated.Add(1)
	var out []string
	if !okRes {
		out = append(out, "response:\n"+describe(resErrs))
	}
	if !ok && (res.StatusCode < 400 || res.StatusCode >= 500) {
		out = append(out, "the document calls the request invalid, yet the server answered "+
			fmt.Sprint(res.StatusCode)+":\n"+describe(reqErrs))
	}
	return strings.Join(out, "\n")
}

// documentedRequest is req as the document names it: a request routed by
// Host ({tenant}.{base-domain}/api/v1/…) is checked as /t/{tenant}/api/v1/….
func documentedRequest(req *http.Request, body []byte, s *Server) *http.Request {
	vreq := req.Clone(req.Context())
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	host := req.Host
	if host != "" && host != req.URL.Host && strings.HasPrefix(req.URL.Path, "/api/v1/") && s != nil {
		if label, _, ok := strings.Cut(host, "."); ok {
			u := *req.URL
			u.Path = "/t/" + label + req.URL.Path
			u.RawPath = ""
			vreq.URL = &u
		}
	}
	return vreq
}

// cleanPath is the form gorilla/mux redirects a path to: path.Clean with
// the trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// unknownRoute reports whether the request errors say the path or the
// method is not in the document.
func unknownRoute(errs []*verrors.ValidationError) bool {
	for _, e := range errs {
		if e.ValidationType == helpers.PathValidation &&
			(e.ValidationSubType == helpers.ValidationMissing || e.ValidationSubType == helpers.ValidationMissingOperation) {
			return true
		}
	}
	return false
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  - %s: %s", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n      %s (at %s)", f.Reason, f.FieldPath)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// recordCount appends the server's count to the file named by CountFileEnv.
func recordCount(n int64) {
	path := os.Getenv(CountFileEnv)
	if path == "" || n == 0 {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = fmt.Fprintln(f, n)
}
