// Package policies holds the authorization policy model of the management
// API: validation, the etcd store (/shoal/v1/policies/<name>, protobuf
// JSON, revision-checked writes), a watch for the control plane, and the
// parsing of policy files for `shoal policies apply`.
//
// A policy names one destination service and lists rules; each rule allows
// some caller identities (SPIFFE IDs), optionally only on some path
// prefixes and methods. A service no policy names allows every caller.
package policies
