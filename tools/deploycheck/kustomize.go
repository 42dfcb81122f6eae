package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// An overlay reads the operator's secrets from secrets/ beside its kustomization.yaml; the
// repository holds only secrets.example/ (placeholders, refused by every gpulab service).
const (
	secretsDir        = "secrets"
	exampleSecretsDir = "secrets.example"
)

// renderKustomization builds dir the way `kubectl apply -k dir` (kustomize's krusty, builtin
// plugins only, no file outside the kustomization's root) does, and returns the YAML stream.
// With exampleSecrets, it builds from an in-memory copy of tree (dir's kustomize tree, e.g.
// deploy/kubernetes) in which every overlay's secrets/ is its secrets.example/: what is on disk
// under secrets/ (an operator's real values) is never read, so it never reaches the output.
func renderKustomization(tree, dir string, exampleSecrets bool) ([]byte, error) {
	fsys := filesys.MakeFsOnDisk()
	if exampleSecrets {
		mem, err := copyWithExampleSecrets(tree)
		if err != nil {
			return nil, err
		}
		fsys = mem
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return resources.AsYaml()
}

func copyWithExampleSecrets(tree string) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == secretsDir {
				return filepath.SkipDir
			}
			return mem.MkdirAll(path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if filepath.Base(filepath.Dir(path)) == exampleSecretsDir {
			real := filepath.Join(filepath.Dir(filepath.Dir(path)), secretsDir, d.Name())
			if err := mem.MkdirAll(filepath.Dir(real)); err != nil {
				return err
			}
			if err := mem.WriteFile(real, data); err != nil {
				return err
			}
		}
		return mem.WriteFile(path, data)
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", tree, err)
	}
	return mem, nil
}

// kubernetesTree is where the manifests live, relative to the repository root.
const kubernetesTree = "deploy/kubernetes"
