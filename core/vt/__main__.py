from vt.cli import main

main()
