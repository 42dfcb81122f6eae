// Package sysinfo reads the node's CPU model, logical CPU count and memory
// from /proc and /sys.
//
// Contract: every read goes through an fs.FS rooted at the host's "/" (Host
// in production, a testdata tree in tests), so no test depends on the
// machine it runs on. A file that is missing or unreadable is an error
// naming it; a CPU whose model nothing names is not an error but an empty
// model. Values are the kernel's: logical CPUs online, MemTotal (what the
// kernel can use, a little under the installed memory).
package sysinfo
