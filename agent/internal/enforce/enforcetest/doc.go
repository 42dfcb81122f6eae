// Package enforcetest holds what tests of enforcement need: Conformance, the
// contract every enforce.Enforcer must keep, written once and run against
// each implementation; and Memory, an Enforcer whose "host" is a map, for
// tests of code that drives enforcers (the registry, the reconciler).
package enforcetest
