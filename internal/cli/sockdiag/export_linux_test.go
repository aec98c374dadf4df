package sockdiag

// Dump returns every socket of one address family that the dump request
// matches, with the tls ULP or not.
func Dump(family uint8) ([]Socket, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var all []Socket
	err = dump(c, family, func(s Socket) { all = append(all, s) })
	return all, err
}
