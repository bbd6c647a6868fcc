package api

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"go.yaml.in/yaml/v3"

	"github.com/patchdesk/patchdesk/docs"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/respond"
)

// referenceFiles are the reference page and its vendored renderer (Redoc
// 2.5.2's standalone bundle from npm, MIT, see reference/redoc.LICENSE):
// served from the binary, no CDN.
//
//go:embed reference/index.html reference/init.js reference/redoc.standalone.js
var referenceFiles embed.FS

// referenceCSP is the page's Content-Security-Policy: the global one plus
// what Redoc needs to draw (styled-components injects <style> elements, its
// search index runs in a blob: worker, icons are data: URIs). Scripts stay
// 'self' only; it is set on /api/docs and its scripts alone.
const referenceCSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
	"worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// reference serves the OpenAPI document and its rendered page.
type reference struct {
	yaml, json []byte
}

// newReference reads the embedded document and converts it to JSON once.
func newReference() (*reference, error) {
	y, err := docs.OpenAPI()
	if err != nil {
		return nil, err
	}
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	j, err := json.Marshal(jsonable(doc))
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml as JSON: %w", err)
	}
	return &reference{yaml: y, json: j}, nil
}

// jsonable turns YAML maps with non-string keys (a bare 200) into maps
// encoding/json can write.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	}
	return v
}

// routes mounts the document and the page on the global router.
func (ref *reference) routes(r *mux.Router) {
	r.HandleFunc("/api/v1/openapi.yaml", ref.serve("application/yaml", ref.yaml)).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/openapi.json", ref.serve("application/json", ref.json)).Methods(http.MethodGet)
	r.HandleFunc("/api/docs", ref.page).Methods(http.MethodGet)
	r.HandleFunc("/api/docs/{file}", ref.asset).Methods(http.MethodGet)
}

func (ref *reference) serve(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	}
}

func (ref *reference) page(w http.ResponseWriter, r *http.Request) {
	ref.file(w, r, "index.html", "text/html; charset=utf-8")
}

func (ref *reference) asset(w http.ResponseWriter, r *http.Request) {
	switch name := mux.Vars(r)["file"]; name {
	case "redoc.standalone.js", "init.js":
		ref.file(w, r, name, "text/javascript; charset=utf-8")
	default:
		respond.Error(w, r, errs.Errorf(errs.ErrNotFound, "no such file"))
	}
}

func (ref *reference) file(w http.ResponseWriter, r *http.Request, name, contentType string) {
	b, err := referenceFiles.ReadFile("reference/" + name)
	if err != nil {
		respond.Error(w, r, fmt.Errorf("reference page: %w", err))
		return
	}
	w.Header().Set("Content-Security-Policy", referenceCSP)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}
