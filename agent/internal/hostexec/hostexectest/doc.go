// Package hostexectest provides Fake, a scripted hostexec.Runner for tests of
// packages that run OS commands.
//
// Contract: Fake answers exactly the command lines a test scripted with Set
// and fails every other one with ErrUnexpected, so a test cannot pass while
// the code under test runs something nobody looked at.
package hostexectest
