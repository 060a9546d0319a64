from datatools.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process (a Dask worker) imports it as __mp_main__
    main()
