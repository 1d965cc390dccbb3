print("aegis-sim: arrives with the simulator")
