"""``leasehold serve``: the ledger as an authenticated HTTP service (the ``server`` extra:
``pip install 'leasehold[server]'``). Nothing on the CLI's or the hooks' path imports this
package."""
