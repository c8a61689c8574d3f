from wikitop.cli import main

main()
