package main

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

var versionRe = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.\d+)?`)

// minorOf returns "2.11" for "v2.11.9", "2.11" or "2.11-alpine"; "" when there is no version.
func minorOf(version string) string {
	m := versionRe.FindStringSubmatch(version)
	if m == nil {
		return ""
	}
	return m[1] + "." + m[2]
}

// checkImagePins makes the images that run the validated files the same minor as the validators.
func checkImagePins(p *types.Project, caddyVersion string) []error {
	var errs []error
	majorTag := regexp.MustCompile(`^\d+`)
	pin := func(service, validator, validatorVersion string) {
		svc, ok := p.Services[service]
		if !ok {
			errs = append(errs, fmt.Errorf("service %q is missing", service))
			return
		}
		_, tag, _ := strings.Cut(svc.Image, ":")
		got, want := minorOf(tag), minorOf(validatorVersion)
		switch {
		case validator == "" && majorTag.MatchString(tag):
			// No validator to match: a major version pin is enough.
		case got == "":
			errs = append(errs, fmt.Errorf("%s image %q has no version tag; pin one", service, svc.Image))
		case want != "" && got != want:
			errs = append(errs, fmt.Errorf("%s image %q is %s but its config is validated with %s %s; keep them on one minor",
				service, svc.Image, got, validator, validatorVersion))
		}
	}
	pin("caddy", "caddy", caddyVersion)
	pin("nats", "nats-server", moduleVersion("github.com/nats-io/nats-server/v2"))
	pin("postgres", "", "")
	// Debian's haproxy validates haproxy.cfg; haproxycheck.sh compares its minor with this tag.
	pin("grpc-front", "", "")
	return errs
}

// moduleVersion is the version of a dependency linked into this binary.
func moduleVersion(path string) string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == path {
				return dep.Version
			}
		}
	}
	return "(unknown version)"
}
