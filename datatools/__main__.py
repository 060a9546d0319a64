from datatools.cli.main import main

main()
