package authz_test

import (
	"context"
	"slices"
	"testing"

	"github.com/patchdesk/patchdesk/modules/authz"
)

// TestPermissionMatrix enumerates every role × action × resource × ownership
// and checks the expected answer; anything not listed is denied.
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	az, err := authz.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type grant struct {
		action, resource string
		roles            []string
		// ownRoles may act only on resources they own (Own = true).
		ownRoles []string
	}
	staff := []string{"owner", "admin", "agent", "light_agent", "viewer"}
	agents := []string{"owner", "admin", "agent"}
	admins := []string{"owner", "admin"}
	grants := []grant{
		{authz.MeRead, authz.ResourceTenant, append(slices.Clone(staff), "customer"), nil},
		{authz.MembersList, authz.ResourceMembers, staff, nil},
		{authz.TokensCreate, authz.ResourceTenant, staff, nil},
		{authz.MembersManage, authz.ResourceMembers, admins, nil},
		{authz.MembersManageOwners, authz.ResourceMembers, []string{"owner"}, nil},
		{authz.CredentialsManage, authz.ResourceCredentials, admins, append(slices.Clone(staff), "customer")},
		{authz.TicketsCreate, authz.ResourceTickets, append(slices.Clone(agents), "customer"), nil},
		// Customers open tickets but never choose their priority or tags.
		{authz.TicketsClassify, authz.ResourceTickets, agents, nil},
		{authz.TicketsRead, authz.ResourceTickets, staff, []string{"customer"}},
		{authz.CommentsReadInternal, authz.ResourceTickets, staff, nil},
		{authz.TicketsUpdate, authz.ResourceTickets, agents, nil},
		{authz.TicketsAssign, authz.ResourceTickets, agents, nil},
		{authz.TicketsAssignable, authz.ResourceTickets, agents, nil},
		{authz.CommentsPublic, authz.ResourceTickets, agents, []string{"customer"}},
		{authz.CommentsInternal, authz.ResourceTickets, append(slices.Clone(agents), "light_agent"), nil},
		{authz.TicketsDelete, authz.ResourceTickets, admins, nil},
		{authz.TicketsReopen, authz.ResourceTickets, admins, nil},
		{authz.AuditRead, authz.ResourceAudit, admins, nil},
		{authz.NotificationsRead, authz.ResourceTenant, append(slices.Clone(staff), "customer"), nil},
		{authz.WebhooksManage, authz.ResourceNotify, admins, nil},
		{authz.DeliveriesManage, authz.ResourceNotify, admins, nil},
		{authz.ReportsRead, authz.ResourceReports, staff, nil},
		{authz.ReportsExport, authz.ResourceReports, admins, nil},
	}
	var actions, resources []string
	for _, g := range grants {
		if !slices.Contains(actions, g.action) {
			actions = append(actions, g.action)
		}
		if !slices.Contains(resources, g.resource) {
			resources = append(resources, g.resource)
		}
	}
	checked := 0
	for _, role := range append(slices.Clone(authz.Roles), "intruder", "") {
		for _, action := range actions {
			for _, resource := range resources {
				for _, own := range []bool{false, true} {
					want := false
					for _, g := range grants {
						if g.action == action && g.resource == resource {
							want = slices.Contains(g.roles, role) || own && slices.Contains(g.ownRoles, role)
						}
					}
					got := az.Allowed(context.Background(), role, authz.Request{Action: action, Resource: resource, Own: own})
					if got != want {
						t.Errorf("role %q %s on %s (own=%v): got %v, want %v", role, action, resource, own, got, want)
					}
					checked++
				}
			}
		}
	}
	if checked != 8*23*7*2 {
		t.Fatalf("checked %d combinations", checked)
	}
}
