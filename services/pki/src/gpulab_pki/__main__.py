from gpulab_pki.main import cli

raise SystemExit(cli())
