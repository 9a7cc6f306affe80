"""FedAvg and the P2 round on Flower's Deployment Engine (flwr 1.42): a SuperLink, one SuperNode per client.

server_app.py and client_app.py are the Flower App (this folder is packed into the FAB with pyproject.toml);
job.py is what both sides share (the run config, the settings, each client's partition file); engine.py runs
the pipeline's Flower stages (main.py --engine flower); local_federation.py starts and stops a federation on
127.0.0.1. README.md, "Running on a real federation (Flower)", says how to run it across machines.
"""
