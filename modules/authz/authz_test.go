package authz_test

import (
	"context"
	"testing"

	"github.com/patchdesk/patchdesk/modules/authz"
)

// TestPermissionMatrix enumerates every role × action × resource and checks
// the expected answer; anything not listed as allowed must be denied.
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	az, err := authz.New()
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ action, resource string }
	allowed := map[key][]string{
		{authz.MeRead, authz.ResourceTenant}:               {"owner", "admin", "agent", "light_agent", "viewer", "customer"},
		{authz.MembersList, authz.ResourceMembers}:         {"owner", "admin", "agent", "light_agent", "viewer"},
		{authz.TokensCreate, authz.ResourceTenant}:         {"owner", "admin", "agent", "light_agent", "viewer"},
		{authz.MembersManage, authz.ResourceMembers}:       {"owner", "admin"},
		{authz.MembersManageOwners, authz.ResourceMembers}: {"owner"},
	}
	actions := []string{authz.MeRead, authz.MembersList, authz.TokensCreate, authz.MembersManage, authz.MembersManageOwners}
	resources := []string{authz.ResourceTenant, authz.ResourceMembers}
	for _, role := range append(authz.Roles, "intruder", "") {
		for _, action := range actions {
			for _, resource := range resources {
				want := false
				for _, r := range allowed[key{action, resource}] {
					want = want || r == role
				}
				for _, own := range []bool{false, true} {
					got := az.Allowed(context.Background(), role, authz.Request{Action: action, Resource: resource, Own: own})
					if got != want {
						t.Errorf("role %q %s on %s (own=%v): got %v, want %v", role, action, resource, own, got, want)
					}
				}
			}
		}
	}
}
