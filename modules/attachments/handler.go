package attachments

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// multipartOverhead is what a multipart body may carry besides the file
// (boundaries, part headers, small fields) before it is refused.
const multipartOverhead = 64 << 10

// Handler serves the attachments part of the HTTP API.
type Handler struct{ svc *Service }

// NewHandler builds the attachments HTTP handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the authenticated attachment routes.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/tickets/{number}/attachments", h.upload).Methods(http.MethodPost)
	r.HandleFunc("/tickets/{number}/attachments/{id}", h.download).Methods(http.MethodGet)
}

// errTicketNotFound answers a malformed ticket number, as tickets does.
var errTicketNotFound = errs.Errorf(errs.ErrNotFound, "ticket not found")

func ticketNumber(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(mux.Vars(r)["number"], 10, 64)
	if err != nil || n < 1 {
		return 0, errTicketNotFound
	}
	return n, nil
}

// upload takes multipart/form-data with the file in field "file", or (an
// extension) the raw file as the body with its name in ?name=.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	sub, _ := authz.SubjectFrom(r.Context())
	tn := tenancy.FromContext(r.Context())
	number, err := ticketNumber(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.svc.cfg.MaxSize+multipartOverhead)
	p, err := uploadParams(r)
	if err == nil {
		var a *Attachment
		if a, err = h.svc.Upload(r.Context(), sub, tn, number, p); err == nil {
			respond.JSON(w, http.StatusCreated, a)
			return
		}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = errs.Errorf(errs.ErrTooLarge, "a file may be at most %d bytes", h.svc.cfg.MaxSize)
	}
	if errors.Is(err, errs.ErrTooLarge) {
		// Read what the client is still sending (bounded by MaxBytesReader)
		// so it hears the 413 rather than a reset connection.
		_, _ = io.Copy(io.Discard, r.Body)
	}
	respond.Error(w, r, err)
}

func uploadParams(r *http.Request) (UploadParams, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		name := r.URL.Query().Get("name")
		if strings.TrimSpace(name) == "" {
			return UploadParams{}, errs.Errorf(errs.ErrInvalidInput, "send multipart/form-data with a file field, or the raw file with ?name=")
		}
		return UploadParams{Name: name, Body: r.Body}, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return UploadParams{}, errs.Errorf(errs.ErrInvalidInput, "malformed multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return UploadParams{}, errs.Errorf(errs.ErrInvalidInput, "the multipart body has no file field")
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return UploadParams{}, err
		}
		if err != nil {
			return UploadParams{}, errs.Errorf(errs.ErrInvalidInput, "malformed multipart body: %v", err)
		}
		if part.FormName() == "file" {
			// The part streams straight from the connection: nothing is
			// buffered beyond the sniffed head.
			return UploadParams{Name: part.FileName(), Body: part}, nil
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			return UploadParams{}, err
		}
	}
}

// inlineTypes are shown in the browser; everything else (HTML, SVG, XML,
// PDF, text) is only ever downloaded.
var inlineTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/avif": true, "image/bmp": true}

func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	sub, _ := authz.SubjectFrom(r.Context())
	tn := tenancy.FromContext(r.Context())
	number, err := ticketNumber(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		respond.Error(w, r, errNotFound)
		return
	}
	f, err := h.svc.Open(r.Context(), sub, tn, number, id)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	defer f.Body.Close()
	mt, _, _ := mime.ParseMediaType(f.ContentType)
	disposition := "attachment"
	if inlineTypes[mt] {
		disposition = "inline"
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ContentType)
	hd.Set("Content-Disposition", disposition+"; filename*=UTF-8''"+url.PathEscape(f.Name))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("ETag", `"`+f.SHA256+`"`)
	hd.Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", f.CreatedAt, f.Body)
}
