package authz

import "github.com/ory/ladon"

// Resources that policies name.
const (
	ResourceTenant  = "tenant"
	ResourceMembers = "members"
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
)

// policies is the built-in policy set. Everything not allowed here is denied.
func policies() []*ladon.DefaultPolicy {
	return []*ladon.DefaultPolicy{
		{
			ID: "everyone-self", Description: "every member reads their own profile",
			Subjects: allRoles, Resources: []string{ResourceTenant}, Actions: []string{MeRead},
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
			ID: "admins-manage-members", Description: "owners and admins manage members",
			Subjects: admins, Resources: []string{ResourceMembers}, Actions: []string{MembersManage},
			Effect: ladon.AllowAccess,
		},
		{
			ID: "owners-manage-owners", Description: "only owners grant, remove or deactivate the owner role",
			Subjects: roles(RoleOwner), Resources: []string{ResourceMembers}, Actions: []string{MembersManageOwners},
			Effect: ladon.AllowAccess,
		},
	}
}
