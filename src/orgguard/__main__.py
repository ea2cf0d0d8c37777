from orgguard.cli import main

main()
