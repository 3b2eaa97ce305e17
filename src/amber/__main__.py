if __name__ == "__main__":  # not when a worker process (spawn) imports this module
    from amber.cli.walfast import main

    main()
