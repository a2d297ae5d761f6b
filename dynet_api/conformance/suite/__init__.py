"""The conformance tests, shipped so that a backend package runs them in its own CI:

    pytest --pyargs dynet_api.conformance.suite --conformance-backend NAME
"""
