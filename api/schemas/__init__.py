"""Request and response bodies. Responses are built from rows by explicit constructors: no ORM row, and so no
token or internal column, can reach a client by accident."""
