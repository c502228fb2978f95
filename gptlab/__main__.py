from gptlab.cli.app import main

main()
