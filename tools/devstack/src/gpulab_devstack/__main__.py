from gpulab_devstack.run import main

raise SystemExit(main())
