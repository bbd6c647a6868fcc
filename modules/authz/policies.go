package authz

import "github.com/ory/ladon"

// Resources that policies name.
const (
	ResourceTenant  = "tenant"
	ResourceMembers = "members"
	ResourceTickets = "tickets"
	ResourceAudit   = "audit"
	ResourceNotify  = "notify"
	ResourceReports = "reports"
	// ResourceCredentials are sessions and API tokens.
	ResourceCredentials = "credentials"
)

func roles(rs ...string) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = "role:" + r
	}
	return out
}

var (
	allRoles = roles(Roles...)
	staff    = roles(RoleOwner, RoleAdmin, RoleAgent, RoleLightAgent, RoleViewer)
	admins   = roles(RoleOwner, RoleAdmin)
	agents   = roles(RoleOwner, RoleAdmin, RoleAgent)
)

// policies is the built-in policy set. Everything not allowed here is denied.
func policies() []*ladon.DefaultPolicy {
	return []*ladon.DefaultPolicy{
		{
			ID: "everyone-self", Description: "every member reads their own profile and notifications",
			Subjects: allRoles, Resources: []string{ResourceTenant}, Actions: []string{MeRead, NotificationsRead},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "admins-integrations", Description: "owners and admins manage webhooks and deliveries",
			Subjects: admins, Resources: []string{ResourceNotify}, Actions: []string{WebhooksManage, DeliveriesManage},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "staff-directory", Description: "staff see the member directory",
			Subjects: staff, Resources: []string{ResourceMembers}, Actions: []string{MembersList},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "staff-tokens", Description: "staff create API tokens acting with their own role",
			Subjects: staff, Resources: []string{ResourceTenant}, Actions: []string{TokensCreate},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "everyone-own-credentials", Description: "every member lists and revokes their own sessions and API tokens",
			Subjects: allRoles, Resources: []string{ResourceCredentials}, Actions: []string{CredentialsManage},
			Conditions: ladon.Conditions{"own": &ladon.BooleanCondition{BooleanValue: true}},
			Effect:     ladon.AllowAccess,
		},
		{
			ID: "admins-credentials", Description: "owners and admins list and revoke every member's sessions and API tokens",
			Subjects: admins, Resources: []string{ResourceCredentials}, Actions: []string{CredentialsManage},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "admins-manage-members", Description: "owners and admins manage members",
			Subjects: admins, Resources: []string{ResourceMembers}, Actions: []string{MembersManage},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "staff-read-tickets", Description: "staff read every ticket, internal notes included",
			Subjects: staff, Resources: []string{ResourceTickets}, Actions: []string{TicketsRead, CommentsReadInternal},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "agents-work-tickets", Description: "agents, admins and owners create, classify, change, assign and reply",
			Subjects: agents, Resources: []string{ResourceTickets},
			Actions: []string{TicketsCreate, TicketsClassify, TicketsUpdate, TicketsAssign, CommentsPublic, CommentsInternal, TicketsAssignable},
			Effect:  ladon.AllowAccess,
		},
		{
			ID: "light-agents-notes", Description: "light agents write internal notes only",
			Subjects: roles(RoleLightAgent), Resources: []string{ResourceTickets}, Actions: []string{CommentsInternal},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "admins-privileged-tickets", Description: "owners and admins delete tickets and reopen closed ones",
			Subjects: admins, Resources: []string{ResourceTickets}, Actions: []string{TicketsDelete, TicketsReopen},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "admins-audit", Description: "owners and admins read the audit log",
			Subjects: admins, Resources: []string{ResourceAudit}, Actions: []string{AuditRead},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "customers-create", Description: "customers open tickets, at the default priority and without tags",
			Subjects: roles(RoleCustomer), Resources: []string{ResourceTickets}, Actions: []string{TicketsCreate},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "customers-own-tickets", Description: "customers read and reply to tickets they requested",
			Subjects: roles(RoleCustomer), Resources: []string{ResourceTickets}, Actions: []string{TicketsRead, CommentsPublic},
			Conditions: ladon.Conditions{"own": &ladon.BooleanCondition{BooleanValue: true}},
			Effect:     ladon.AllowAccess,
		},
		{
			ID: "staff-reports", Description: "staff read the reports summary",
			Subjects: staff, Resources: []string{ResourceReports}, Actions: []string{ReportsRead},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "admins-exports", Description: "owners and admins export every ticket",
			Subjects: admins, Resources: []string{ResourceReports}, Actions: []string{ReportsExport},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "owners-manage-owners", Description: "only owners grant, remove or deactivate the owner role",
			Subjects: roles(RoleOwner), Resources: []string{ResourceMembers}, Actions: []string{MembersManageOwners},
			Effect: ladon.AllowAccess,
		},
	}
}
