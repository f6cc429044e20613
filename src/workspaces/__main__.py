from workspaces.cli import main

main()
