package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An operator's secrets/ beside the example must never reach the check's output (CI logs): with
// -example-secrets the render takes secrets.example/, whatever secrets/ holds.
func TestExampleSecretsRenderInsteadOfTheOperators(t *testing.T) {
	tree := filepath.Join(t.TempDir(), kubernetesTree)
	if err := os.CopyFS(tree, os.DirFS(filepath.Join("..", "..", kubernetesTree))); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(tree, "overlays", "production")
	if err := os.CopyFS(filepath.Join(overlay, secretsDir), os.DirFS(filepath.Join(overlay, exampleSecretsDir))); err != nil {
		t.Fatal(err)
	}
	real := "key=an-operators-real-audit-key-0123456789abcdef\n"
	if err := os.WriteFile(filepath.Join(overlay, secretsDir, "audit-hmac-key.env"), []byte(real), 0o600); err != nil {
		t.Fatal(err)
	}
	encoded := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	sentinel := encoded("an-operators-real-audit-key-0123456789abcdef")

	onDisk, err := renderKustomization(tree, overlay, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(onDisk), sentinel) {
		t.Fatal("without -example-secrets the overlay's secrets/ is rendered; the test's sentinel is not in it")
	}
	example, err := renderKustomization(tree, overlay, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(example), sentinel) {
		t.Fatal("-example-secrets rendered the operator's secrets/")
	}
	if !strings.Contains(string(example), encoded("change-me-audit-hmac-key")) {
		t.Fatal("-example-secrets did not render secrets.example/")
	}
}
