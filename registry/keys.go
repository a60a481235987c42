package registry

import (
	"fmt"
	"strings"
)

// Key schema (ARCHITECTURE.md, "Contract: etcd keys").
const (
	// Prefix is the root of every key shoal owns.
	Prefix = "/shoal/v1/"
	// InstancesPrefix holds one key per registered instance,
	// InstancesPrefix + "<service>/<instance-id>", bound to a lease.
	InstancesPrefix = Prefix + "instances/"
	// RoutesPrefix holds one key per route, RoutesPrefix + "<route-name>".
	RoutesPrefix = Prefix + "routes/"
	// PoliciesPrefix holds one key per authorization policy,
	// PoliciesPrefix + "<policy-name>".
	PoliciesPrefix = Prefix + "policies/"
)

// InstanceKey returns the etcd key of an instance.
func InstanceKey(service, id string) string {
	return InstancesPrefix + service + "/" + id
}

// ServicePrefix returns the key prefix of every instance of service.
func ServicePrefix(service string) string {
	return InstancesPrefix + service + "/"
}

// ParseInstanceKey splits an instance key into service and instance id.
func ParseInstanceKey(key string) (service, id string, err error) {
	rest, ok := strings.CutPrefix(key, InstancesPrefix)
	if !ok {
		return "", "", fmt.Errorf("registry: key %q is not under %s", key, InstancesPrefix)
	}
	service, id, ok = strings.Cut(rest, "/")
	if !ok || service == "" || id == "" || strings.Contains(id, "/") {
		return "", "", fmt.Errorf("registry: key %q is not %s<service>/<id>", key, InstancesPrefix)
	}
	return service, id, nil
}
