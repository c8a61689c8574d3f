from wikitop.cli import run

run()
