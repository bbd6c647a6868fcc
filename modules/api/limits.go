package api

import (
	"cmp"
	"net/http"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/ratelimit"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// limits rate-limits authenticated requests per member and per tenant.
type limits struct {
	member, tenant *ratelimit.Limiter
}

func newLimits(memberPerMin, tenantPerMin float64) *limits {
	memberPerMin, tenantPerMin = cmp.Or(memberPerMin, 1200), cmp.Or(tenantPerMin, 30_000)
	return &limits{
		member: ratelimit.New(memberPerMin, int(max(memberPerMin/6, 1)), 100_000),
		tenant: ratelimit.New(tenantPerMin, int(max(tenantPerMin/6, 1)), 100_000),
	}
}

// middleware answers 429 with Retry-After once a member or their tenant
// exceeds its rate. It runs after authentication and keys on the
// authenticated identity, never on the header's spelling: "Bearer  <token>"
// and "bearer <token>" are the same credential, and a member's sessions and
// API tokens share one budget, so minting more tokens buys no more requests.
func (l *limits) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, ok := authz.SubjectFrom(r.Context())
		if !ok {
			respond.Error(w, r, errs.Errorf(errs.ErrUnauthenticated, "not authenticated"))
			return
		}
		t := tenancy.FromContext(r.Context())
		for _, c := range []struct {
			lim *ratelimit.Limiter
			key string
			who string
		}{{l.member, t.ID.String() + "|" + sub.MemberID.String(), "member"}, {l.tenant, t.ID.String(), "tenant"}} {
			if ok, retry := c.lim.Allow(c.key); !ok {
				respond.Error(w, r, &errs.Problem{Kind: errs.ErrRateLimited, Detail: "rate limit of this " + c.who + " exceeded", RetryAfter: retry})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
