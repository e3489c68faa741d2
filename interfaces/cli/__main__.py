from interfaces.cli.main import main

main()
