package main

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// permission is one thing the controller does to the API.
type permission struct {
	verb, group, resource, namespace string
}

func (p permission) String() string {
	r := p.resource
	if p.group != "" {
		r += "." + p.group
	}
	if p.namespace == "" {
		return p.verb + " " + r + " (cluster-wide)"
	}
	return p.verb + " " + r + " in namespace " + p.namespace
}

// requiredPermissions lists what the controller will do with these flags
// (cleanup.Permissions, which deploy/rbac.yaml is tested against, plus the
// Lease for --leader-elect), so a missing rule fails at start with its name
// instead of as a stuck informer later.
func requiredPermissions(f flags) []permission {
	var ps []permission
	for _, p := range cleanup.Permissions(!f.DryRun) {
		ns := ""
		if p.Namespaced {
			ns = f.Namespace
		}
		ps = append(ps, permission{p.Verb, p.Group, p.Resource, ns})
	}
	if f.LeaderElect {
		for _, v := range leasePermissions {
			ps = append(ps, permission{v, "coordination.k8s.io", "leases", f.LeaderElectNamespace})
		}
	}
	return ps
}

// leasePermissions are the verbs client-go's Lease lock uses.
var leasePermissions = []string{"get", "create", "update"}

// checkPermissions asks the API server, with SelfSubjectAccessReviews,
// whether this identity may do each of ps, and names every one it may not.
func checkPermissions(ctx context.Context, kube kubernetes.Interface, ps []permission) error {
	var missing []string
	for _, p := range ps {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: p.verb, Group: p.group, Resource: p.resource, Namespace: p.namespace},
		}}
		got, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("check RBAC permission to %s: %w", p, err)
		}
		if !got.Status.Allowed {
			missing = append(missing, p.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing RBAC permission: cannot %s (see deploy/rbac.yaml)", strings.Join(missing, "; cannot "))
	}
	return nil
}
