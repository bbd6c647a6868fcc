package attachments_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/attachments"
)

// store names a blob store for one test server: a fresh URL each call.
type store func(t *testing.T) string

// fileStore is the local directory driver (fileblob).
func fileStore(t *testing.T) string { return "file://" + filepath.ToSlash(t.TempDir()) }

// s3Store is the real s3blob driver talking to an in-process S3 server on
// loopback (gofakes3), with anonymous credentials.
func s3Store(t *testing.T) string {
	backend := s3mem.New()
	if err := backend.CreateBucket("patchdesk"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "use_path_style": {"true"}, "anonymous": {"true"}}
	return "s3://patchdesk?" + q.Encode()
}

// TestAttachmentsFileblob runs the suite against a local directory.
func TestAttachmentsFileblob(t *testing.T) {
	t.Parallel()
	suite(t, fileStore)
}

// TestAttachmentsS3 runs the same suite through s3blob against gofakes3.
func TestAttachmentsS3(t *testing.T) {
	t.Parallel()
	suite(t, s3Store)
}

// env is one server with a workspace: tokens by role, a ticket of the
// customer's, and the bucket the server writes to, opened independently.
type env struct {
	s        *apitest.Server
	slug     string
	tenantID string
	schema   string
	tok      map[string]string
	ticket   string // number of the customer's ticket
	bucket   *blob.Bucket
}

func newEnv(t *testing.T, st store, slug string, cfg func(*attachments.Config)) *env {
	t.Helper()
	u := st(t)
	s := apitest.New(t, func(c *api.Config) {
		c.Attachments.BlobURL = u
		if cfg != nil {
			cfg(&c.Attachments)
		}
	})
	return envOn(t, s, u, slug)
}

func envOn(t *testing.T, s *apitest.Server, blobURL, slug string) *env {
	t.Helper()
	owner := s.Signup(t, slug)
	e := &env{s: s, slug: slug, tok: map[string]string{"owner": owner}}
	var customerEmail string
	for _, role := range []string{"agent", "light_agent", "viewer", "customer"} {
		m := s.AddMember(t, slug, owner, role)
		e.tok[role] = m.Token
		if role == "customer" {
			customerEmail = m.Email
		}
	}
	tn, err := s.Reg.Lookup(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	e.tenantID, e.schema = tn.ID.String(), tn.Schema
	r := e.call(t, "owner", "POST", "/tickets", map[string]any{"title": "printer", "body": "jammed", "requester_email": customerEmail})
	if r.Status != http.StatusCreated {
		t.Fatalf("create ticket: %s", r)
	}
	e.ticket = strconv.Itoa(int(r.JSON["number"].(float64)))
	if blobURL != "" {
		if e.bucket, err = blob.OpenBucket(context.Background(), blobURL); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.bucket.Close() })
	}
	return e
}

func (e *env) call(t *testing.T, role, method, path string, body any, headers ...string) apitest.Resp {
	t.Helper()
	return e.s.Call(t, method, "/t/"+e.slug+"/api/v1"+path, e.tok[role], body, headers...)
}

// upload sends data as the multipart field "file" named name.
func (e *env) upload(t *testing.T, role, number, name string, data []byte, headers ...string) apitest.Resp {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("note", "fields before the file are skipped")
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	_ = mw.Close()
	return e.call(t, role, "POST", "/tickets/"+number+"/attachments", b.String(), append([]string{"Content-Type", mw.FormDataContentType()}, headers...)...)
}

// uploadRaw sends data as the raw body with ?name=.
func (e *env) uploadRaw(t *testing.T, role, number, name string, data []byte) apitest.Resp {
	t.Helper()
	return e.call(t, role, "POST", "/tickets/"+number+"/attachments?name="+url.QueryEscape(name), string(data), "Content-Type", "application/octet-stream")
}

func (e *env) download(t *testing.T, role, number, id string, headers ...string) apitest.Resp {
	t.Helper()
	return e.call(t, role, "GET", "/tickets/"+number+"/attachments/"+id, nil, headers...)
}

// objects lists the workspace's blobs.
func (e *env) objects(t *testing.T) []string {
	t.Helper()
	var keys []string
	it := e.bucket.List(&blob.ListOptions{Prefix: "tenants/" + e.tenantID + "/"})
	for {
		obj, err := it.Next(context.Background())
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, obj.Key)
	}
}

// rows counts the workspace's attachment rows, read as the database owner.
func (e *env) rows(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.s.Admin(t).QueryRow(context.Background(), `SELECT count(*) FROM `+e.schema+`.attachments`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func pngBytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func suite(t *testing.T, st store) {
	// Suites with the default limits share one server (one database);
	// each gets its own workspace.
	defURL := st(t)
	def := apitest.New(t, func(c *api.Config) { c.Attachments.BlobURL = defURL })
	defEnv := func(t *testing.T, slug string) *env { return envOn(t, def, defURL, slug) }
	t.Run("upload and download round trip", func(t *testing.T) {
		t.Parallel()
		e := defEnv(t, "roundtrip")
		data := pngBytes(t)
		r := e.upload(t, "agent", e.ticket, "../../shot\u202Egnp.png", data)
		if r.Status != http.StatusCreated {
			t.Fatalf("upload: %s", r)
		}
		id := r.JSON["id"].(string)
		if r.JSON["name"] != "shotgnp.png" || r.JSON["size"] != float64(len(data)) || r.JSON["content_type"] != "image/png" || r.JSON["sha256"] != digest(data) {
			t.Fatalf("upload answered %s", r)
		}
		if keys := e.objects(t); len(keys) != 1 || keys[0] != "tenants/"+e.tenantID+"/attachments/"+id {
			t.Fatalf("objects %v, want the one key tenants/<tenant>/attachments/<id>", keys)
		}
		d := e.download(t, "agent", e.ticket, id)
		if d.Status != http.StatusOK || !bytes.Equal(d.Body, data) {
			t.Fatalf("download: %d, %d bytes", d.Status, len(d.Body))
		}
		for h, want := range map[string]string{
			"Content-Type": "image/png", "X-Content-Type-Options": "nosniff",
			"Content-Disposition": "inline; filename*=UTF-8''shotgnp.png", "ETag": `"` + digest(data) + `"`,
		} {
			if got := d.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if nm := e.download(t, "agent", e.ticket, id, "If-None-Match", `"`+digest(data)+`"`); nm.Status != http.StatusNotModified {
			t.Errorf("If-None-Match: %s", nm)
		}
		if rg := e.download(t, "agent", e.ticket, id, "Range", "bytes=1-3"); rg.Status != http.StatusPartialContent || !bytes.Equal(rg.Body, data[1:4]) {
			t.Errorf("Range: %d %q", rg.Status, rg.Body)
		}
	})

	t.Run("raw body, sniffed type, never inline HTML or SVG", func(t *testing.T) {
		t.Parallel()
		e := defEnv(t, "sniff")
		cases := []struct {
			name, body, wantType string
		}{
			{"page.png", "<!DOCTYPE html><html><script>alert(1)</script></html>", "text/html"},
			{"logo.png", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`, "image/svg+xml"},
			{"résumé notes.txt", "plain words\n", "text/plain"},
		}
		for _, c := range cases {
			r := e.uploadRaw(t, "customer", e.ticket, c.name, []byte(c.body))
			if r.Status != http.StatusCreated {
				t.Fatalf("upload %s: %s", c.name, r)
			}
			ct, _ := r.JSON["content_type"].(string)
			if !strings.HasPrefix(ct, c.wantType) {
				t.Errorf("%s sniffed as %q, want %s (the client's name and header do not count)", c.name, ct, c.wantType)
			}
			d := e.download(t, "customer", e.ticket, r.JSON["id"].(string))
			want := "attachment; filename*=UTF-8''" + url.PathEscape(c.name)
			if d.Status != http.StatusOK || d.Header.Get("Content-Disposition") != want || d.Body == nil {
				t.Errorf("download %s: %d, disposition %q, want %q", c.name, d.Status, d.Header.Get("Content-Disposition"), want)
			}
		}
	})

	t.Run("25 MiB limit leaves nothing behind", func(t *testing.T) {
		t.Parallel()
		e := defEnv(t, "limit")
		big := bytes.Repeat([]byte("x"), attachments.MaxSize+1)
		for _, r := range []apitest.Resp{e.upload(t, "agent", e.ticket, "big.log", big), e.uploadRaw(t, "agent", e.ticket, "big.log", big)} {
			if !r.IsProblem(http.StatusRequestEntityTooLarge) {
				t.Fatalf("over the limit: %s", r)
			}
		}
		if keys, n := e.objects(t), e.rows(t); len(keys) != 0 || n != 0 {
			t.Fatalf("left behind: objects %v, %d rows", keys, n)
		}
	})

	t.Run("configured limit is exact", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, st, "exact", func(c *attachments.Config) { c.MaxSize = 5000 })
		if r := e.upload(t, "agent", e.ticket, "a.bin", bytes.Repeat([]byte{1}, 5000)); r.Status != http.StatusCreated {
			t.Fatalf("at the limit: %s", r)
		}
		if r := e.upload(t, "agent", e.ticket, "b.bin", bytes.Repeat([]byte{1}, 5001)); !r.IsProblem(http.StatusRequestEntityTooLarge) {
			t.Fatalf("one byte over: %s", r)
		}
		if keys, n := e.objects(t), e.rows(t); len(keys) != 1 || n != 1 {
			t.Fatalf("objects %v, %d rows; want only the first", keys, n)
		}
	})

	t.Run("quota", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, st, "quota", func(c *attachments.Config) { c.Quota = 3000 })
		if r := e.uploadRaw(t, "agent", e.ticket, "a.bin", bytes.Repeat([]byte{2}, 2000)); r.Status != http.StatusCreated {
			t.Fatalf("under quota: %s", r)
		}
		r := e.uploadRaw(t, "agent", e.ticket, "b.bin", bytes.Repeat([]byte{2}, 1001))
		if !r.IsProblem(http.StatusUnprocessableEntity) || !strings.Contains(r.JSON["detail"].(string), "quota") {
			t.Fatalf("over quota: %s", r)
		}
		if keys, n := e.objects(t), e.rows(t); len(keys) != 1 || n != 1 {
			t.Fatalf("objects %v, %d rows; want only the first", keys, n)
		}
		if r := e.uploadRaw(t, "agent", e.ticket, "c.bin", bytes.Repeat([]byte{2}, 1000)); r.Status != http.StatusCreated {
			t.Fatalf("exactly at quota: %s", r)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		e := defEnv(t, "badinput")
		if r := e.uploadRaw(t, "agent", e.ticket, "empty.txt", nil); !r.IsProblem(http.StatusUnprocessableEntity) {
			t.Errorf("empty file: %s", r)
		}
		if r := e.call(t, "agent", "POST", "/tickets/"+e.ticket+"/attachments", "data", "Content-Type", "application/octet-stream"); !r.IsProblem(http.StatusBadRequest) {
			t.Errorf("raw body without ?name=: %s", r)
		}
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		_ = mw.WriteField("other", "x")
		_ = mw.Close()
		if r := e.call(t, "agent", "POST", "/tickets/"+e.ticket+"/attachments", b.String(), "Content-Type", mw.FormDataContentType()); !r.IsProblem(http.StatusBadRequest) {
			t.Errorf("multipart without a file field: %s", r)
		}
		if r := e.download(t, "agent", e.ticket, "not-a-uuid"); !r.IsProblem(http.StatusNotFound) {
			t.Errorf("malformed id: %s", r)
		}
		if keys, n := e.objects(t), e.rows(t); len(keys) != 0 || n != 0 {
			t.Fatalf("left behind: objects %v, %d rows", keys, n)
		}
	})

	t.Run("permissions", func(t *testing.T) {
		t.Parallel()
		e := defEnv(t, "perms")
		data := []byte("log line\n")
		// The viewer reads tickets but may not write on them.
		if r := e.uploadRaw(t, "viewer", e.ticket, "v.txt", data); !r.IsProblem(http.StatusForbidden) {
			t.Errorf("viewer upload: %s", r)
		}
		// A light agent writes internal notes, so may upload.
		if r := e.uploadRaw(t, "light_agent", e.ticket, "l.txt", data); r.Status != http.StatusCreated {
			t.Errorf("light agent upload: %s", r)
		}
		agentFile := e.uploadRaw(t, "agent", e.ticket, "agent.txt", data).JSON["id"].(string)
		customerFile := e.uploadRaw(t, "customer", e.ticket, "customer.txt", data).JSON["id"].(string)
		// Not yet claimed by a comment: the uploader and staff only.
		for _, c := range []struct {
			role, id string
			want     int
		}{
			{"agent", agentFile, 200}, {"owner", agentFile, 200}, {"viewer", agentFile, 200}, {"customer", agentFile, 404},
			{"customer", customerFile, 200}, {"agent", customerFile, 200},
		} {
			if r := e.download(t, c.role, e.ticket, c.id); r.Status != c.want {
				t.Errorf("%s downloads %s: %s, want %d", c.role, c.id, r, c.want)
			}
		}
		// A ticket the customer did not request: invisible, for upload too.
		other := e.call(t, "agent", "POST", "/tickets", map[string]any{"title": "internal", "body": "x"})
		otherNum := strconv.Itoa(int(other.JSON["number"].(float64)))
		if r := e.uploadRaw(t, "customer", otherNum, "c.txt", data); !r.IsProblem(http.StatusNotFound) {
			t.Errorf("customer upload to another's ticket: %s", r)
		}
		otherFile := e.uploadRaw(t, "agent", otherNum, "o.txt", data).JSON["id"].(string)
		if r := e.download(t, "customer", otherNum, otherFile); !r.IsProblem(http.StatusNotFound) {
			t.Errorf("customer download from another's ticket: %s", r)
		}
		// An attachment is reached only through its own ticket.
		if r := e.download(t, "agent", e.ticket, otherFile); !r.IsProblem(http.StatusNotFound) {
			t.Errorf("through the wrong ticket: %s", r)
		}
		// Another workspace's id is 404, even with a ticket of the same number.
		f := envOn(t, e.s, "", "perms-other")
		if r := f.download(t, "owner", f.ticket, agentFile); !r.IsProblem(http.StatusNotFound) {
			t.Errorf("another workspace's attachment: %s", r)
		}
		if r := e.uploadRaw(t, "agent", "999", "x.txt", data); !r.IsProblem(http.StatusNotFound) {
			t.Errorf("upload to a missing ticket: %s", r)
		}
		if r := e.call(t, "", "GET", "/tickets/"+e.ticket+"/attachments/"+agentFile, nil); !r.IsProblem(http.StatusUnauthorized) {
			t.Errorf("anonymous download: %s", r)
		}
	})

	t.Run("comments claim attachments and share their visibility", func(t *testing.T) {
		t.Parallel()
		e := defEnv(t, "claims")
		data := []byte("some log\n")
		up := func(role, name string) string {
			r := e.uploadRaw(t, role, e.ticket, name, data)
			if r.Status != http.StatusCreated {
				t.Fatalf("upload %s: %s", name, r)
			}
			return r.JSON["id"].(string)
		}
		noteFile, replyFile, spare, customerFile := up("agent", "note.txt"), up("agent", "reply.txt"), up("agent", "spare.txt"), up("customer", "c.txt")
		comment := func(role string, body map[string]any) apitest.Resp {
			return e.call(t, role, "POST", "/tickets/"+e.ticket+"/comments", body)
		}
		names := func(c map[string]any) []string {
			var out []string
			for _, a := range c["attachments"].([]any) {
				out = append(out, a.(map[string]any)["name"].(string))
			}
			return out
		}
		if r := comment("agent", map[string]any{"body": "note", "internal": true, "attachment_ids": []string{noteFile}}); r.Status != http.StatusCreated || fmt.Sprint(names(r.JSON)) != "[note.txt]" {
			t.Fatalf("note with a file: %s", r)
		}
		if r := comment("agent", map[string]any{"body": "reply", "attachment_ids": []string{replyFile, replyFile}}); r.Status != http.StatusCreated || fmt.Sprint(names(r.JSON)) != "[reply.txt]" {
			t.Fatalf("reply with a file named twice: %s", r)
		}
		if r := comment("customer", map[string]any{"body": "mine", "attachment_ids": []string{customerFile}}); r.Status != http.StatusCreated {
			t.Fatalf("customer reply with a file: %s", r)
		}
		// Refused, and nothing written: a file already claimed, another
		// member's upload, an unknown id, a malformed one.
		before := len(e.call(t, "agent", "GET", "/tickets/"+e.ticket+"/comments", nil).Items())
		for _, c := range []struct {
			role string
			ids  []string
			want int
		}{
			{"agent", []string{noteFile}, 422}, {"customer", []string{spare}, 422},
			{"agent", []string{spare, "00000000-0000-4000-8000-000000000000"}, 422}, {"agent", []string{"nope"}, 400},
		} {
			if r := comment(c.role, map[string]any{"body": "x", "attachment_ids": c.ids}); !r.IsProblem(c.want) {
				t.Errorf("%s claims %v: %s, want %d", c.role, c.ids, r, c.want)
			}
		}
		if after := len(e.call(t, "agent", "GET", "/tickets/"+e.ticket+"/comments", nil).Items()); after != before {
			t.Errorf("a refused claim wrote a comment: %d → %d", before, after)
		}
		// The spare is still the agent's to claim.
		if r := comment("agent", map[string]any{"body": "later", "attachment_ids": []string{spare}}); r.Status != http.StatusCreated {
			t.Errorf("claim after refusals: %s", r)
		}
		// Customers never reach an internal note's files.
		if r := e.download(t, "customer", e.ticket, noteFile); !r.IsProblem(http.StatusNotFound) {
			t.Errorf("customer downloads an internal note's file: %s", r)
		}
		for _, id := range []string{replyFile, customerFile} {
			if r := e.download(t, "customer", e.ticket, id); r.Status != http.StatusOK {
				t.Errorf("customer downloads a public file: %s", r)
			}
		}
		var seen []string
		for _, c := range e.call(t, "customer", "GET", "/tickets/"+e.ticket+"/comments", nil).Items() {
			seen = append(seen, names(c)...)
		}
		if fmt.Sprint(seen) != "[reply.txt c.txt spare.txt]" {
			t.Errorf("customer's comment list shows files %v", seen)
		}
		seen = nil
		for _, c := range e.call(t, "light_agent", "GET", "/tickets/"+e.ticket+"/comments", nil).Items() {
			seen = append(seen, names(c)...)
		}
		if fmt.Sprint(seen) != "[note.txt reply.txt c.txt spare.txt]" {
			t.Errorf("staff comment list shows files %v", seen)
		}
	})
}
