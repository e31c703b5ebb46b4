from gansweep.benchmark import main

main()
