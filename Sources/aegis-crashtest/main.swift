print("aegis-crashtest: arrives with AegisStorage")
