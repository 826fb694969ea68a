from albertctl.cli import main

main()
