// Package identity is the node's identity on disk and in memory: its EC P-384
// key (node.key), the client certificate the CA issued for it (node.pem), the
// pinned CA certificate (ca.pem) and where to reach the control plane
// (agent.json), all in one directory (0700, files 0600).
//
// Contract:
//   - The CA in ca.pem is the only trust root for every connection the agent
//     makes to the control plane; no system root is ever consulted.
//   - The identity in a directory changes only as a whole. A change is staged
//     as "<name>.next" files, node.key.next first, and committed by renaming
//     node.key.next onto node.key; the other names follow. Load (and every
//     later change) first finishes or undoes a change a crash interrupted:
//     node.key.next still there means "not committed" (the .next files are
//     removed), .next files without it mean "committed" (they are renamed
//     into place). So a reader never pairs a new key with an old certificate.
//   - Renew keeps the node's identity (its CN, the node id) and replaces key
//     and certificate; when the control plane no longer accepts the current
//     certificate (expired, revoked) it returns an error matching
//     ErrReenrollNeeded, and only a new enrollment with a new token helps.
//
// The first enrollment, which pins the CA by its fingerprint and spends the
// token, lives in package enroll; it stores its result with Begin.
package identity
