package api

import (
	"cmp"
	"crypto/sha256"
	"net/http"
	"strings"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/ratelimit"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// limits rate-limits authenticated requests per token and per tenant.
type limits struct {
	token, tenant *ratelimit.Limiter
}

func newLimits(tokenPerMin, tenantPerMin float64) *limits {
	tokenPerMin, tenantPerMin = cmp.Or(tokenPerMin, 1200), cmp.Or(tenantPerMin, 30_000)
	return &limits{
		token:  ratelimit.New(tokenPerMin, int(max(tokenPerMin/6, 1)), 100_000),
		tenant: ratelimit.New(tenantPerMin, int(max(tenantPerMin/6, 1)), 100_000),
	}
}

// middleware answers 429 with Retry-After once a token or its tenant exceeds its rate.
func (l *limits) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(token)) // keep no raw tokens in memory
		t := tenancy.FromContext(r.Context())
		for _, c := range []struct {
			lim *ratelimit.Limiter
			key string
			who string
		}{{l.token, string(sum[:]), "token"}, {l.tenant, t.ID.String(), "tenant"}} {
			if ok, retry := c.lim.Allow(c.key); !ok {
				respond.Error(w, r, &errs.Problem{Kind: errs.ErrRateLimited, Detail: "rate limit of this " + c.who + " exceeded", RetryAfter: retry})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
