"""Multi-hospital deployment on Flower 1.42 (optional extra: pip install 'mpclr[deploy]').

The protocols do not change: `FlowerNetwork` (transport.py) is one more implementation of the network
interface, used by the coordinator's ServerApp (server_app.py); each hospital runs a SuperNode whose
ClientApp answers protocol steps from its own keystore and data (hospital.py, supernode.py).

    python -m mpclr.deploy local                 try it: SuperLink + 3 hospitals on 127.0.0.1, one study
    python -m mpclr.deploy hospital --config FILE    a hospital's SuperNode (docs/deployment.md)
    python -m mpclr.deploy certs / keys / app    certificates, a hospital's key pair, the Flower app folder
"""
